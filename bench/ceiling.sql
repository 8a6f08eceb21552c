-- The ceiling kefu's benchmark is compared with: what PostgreSQL on this machine does for one
-- transaction that inserts a complaint-sized row and an outbox row, as intake's registration does.
-- Run by bench/ceiling.sh.
BEGIN;
INSERT INTO ceiling_complaints (case_number, request_id, category, waybill_number, channel, description,
    customer_request, contact_name, contact_phone, branch, owner, responsible_unit, state, create_time,
    deadline, received_by, received_by_department)
VALUES (md5(random()::text), md5(random()::text), 'late_delivery', 'YD00100000001', 'phone',
    '货物延误三天未到,客户多次查询无果', '尽快送达并说明原因', '测试客户', '13800000000', 'B01', 'inspection',
    'branch', 'routed', now(), now() + interval '48 hours', 'anonymous', '');
INSERT INTO ceiling_outbox (event_id, destination, payload, attempts, next_attempt_at, create_time)
VALUES (md5(random()::text), 'inspection', convert_to(repeat('x', 420), 'UTF8'), 0, now(), now());
COMMIT;
