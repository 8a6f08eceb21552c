// kefu console: the service center's screens in one module, no framework and no build step.
//
// It talks only to the kefu server that served it (src/console/mod.rs): `/api/call/<method>` for
// any public method, `/api/inbox` and `/api/case` for lists and cases with the server's SLA
// badges, `/api/settings` and `/api/describe`. Every call carries the token the person signed in
// with; what their roles may not call (GetCaller's `methods`) is not offered. Text from the server
// is always set as text, never as HTML.

// ---------------------------------------------------------------------------------------------
// Words, in Chinese (the default) and English. The handbook's terms.

const WORDS = {
  'zh-CN': {
    app: 'kefu 客服', sign_in: '登录', sign_out: '退出', token: '令牌 (kefu token 或单点登录 JWT)',
    sign_in_hint: '管理员用 kefu token create 为您创建令牌。令牌只保存在本标签页中。',
    signed_out: '已退出。', session_expired: '令牌已失效，请重新登录。',
    inbox: '工作台', new_call: '受理', claims: '理赔部', inspection: '监察部', settlement: '结算部',
    archives: '档案室', reports: '报表', language: 'English',
    view_open: '本部门未结', view_overdue: '已超时', view_due_today: '今日到期', view_awaiting_approval: '待审批',
    view_reopened: '重新处理', view_paused: '等待客户', view_all: '全部',
    by_branch: '按分公司', all_branches: '全部分公司', search: '搜索受理编号、运单号或电话 (/)',
    any_category: '全部类别', any_state: '全部状态', any_owner: '全部部门', refresh: '刷新',
    case_number: '受理编号', category: '类别', branch: '分公司', owner: '处理部门', state: '状态',
    severity: '严重程度', created: '受理时间', deadline: '处理时限', sla: '时效', kind: '类型',
    nothing: '没有符合条件的案件。', truncated: '只显示最新的 2000 件；请用筛选缩小范围。',
    sla_overdue: '超时 {t}', sla_due_today: '今日到期，剩 {t}', sla_on_time: '剩 {t}', sla_paused: '已暂停，剩 {t}',
    sla_met: '按时办结', sla_missed: '逾期办结 {t}', sla_none: '—',
    d: '天', h: '小时', m: '分',
    channel: '受理方式', waybill_number: '运单号', contact_name: '客户姓名', contact_phone: '联系电话',
    description: '投诉内容', customer_request: '客户要求', submit_call: '登记', taking_call: '受理来电来函',
    read_out: '请向客户读出受理编号：', open_case: '打开案件', another_call: '受理下一件',
    kind_COMPLAINT: '投诉', kind_INQUIRY: '查询', kind_CONSULTATION: '咨询', kind_SUGGESTION: '建议', kind_CHANGE_REQUEST: '更改申请',
    channel_PHONE: '电话', channel_LETTER: '信函', channel_IN_PERSON: '来访', channel_ONLINE: '网络',
    severity_GENERAL: '一般', severity_SERIOUS: '严重', severity_CRITICAL: '重大',
    state_ROUTED: '已转办', state_ACCEPTED: '已受理', state_RESOLVED: '已处理', state_CLOSED: '已结案',
    state_AWAITING_APPROVAL: '待审批', state_NOTIFIED: '已告知客户', state_REOPENED: '重新处理', state_DUPLICATE: '重复',
    dept_intake: '客服中心', dept_inspection: '监察部', dept_claims: '理赔部', dept_settlement: '结算部',
    dept_archives: '档案室', dept_external: '外部', dept_: '全公司',
    fields: '案件信息', owner_record: '处理部门记录', deadline_rule: '时限规则', paused_for: '已等待客户',
    timeline: '处理过程', replies: '答复客户', visits: '回访', related: '该客户的其他案件',
    rel_incident: '二次投诉', rel_duplicate: '重复', rel_same_waybill: '同一运单', rel_same_phone: '同一电话',
    actions: '操作', resolve: '处理完毕', resolution: '处理结果', cause: '查明原因', reopen: '重新处理', reason: '原因',
    change_severity: '更改严重程度', wait: '等待客户', resume: '恢复处理', note: '备注', approve_outcome: '审批处理结果',
    written_answer: '书面答复', link_duplicate: '标为重复', duplicate_of: '重复于 (受理编号)', unlink_duplicate: '取消重复',
    record_reply: '记录答复', reached: '已联系上客户', plan_visit: '安排回访', record_visit: '记录回访', sign_visit: '签字确认',
    close: '结案', done: '已完成。', failed: '未完成', cancel: '取消', send: '提交', back: '返回工作台',
    not_offered: '您的角色不能执行此操作。', loading: '加载中…', unavailable: '无法显示：',
    approval_queue: '待主管审批', quote: '赔偿试算', amount: '赔偿金额', rule: '依据', all_records: '全部记录',
    late_remittances: '代收货款转帐不及时', waybill: '运单', look_up: '查询', access_requests: '调阅申请',
    access_queue: '待我签批的调阅申请', change_queue: '待审批的运单更改申请', approve_selected: '批准所选', refuse_selected: '拒绝所选', load: '载入',
    borrowing: '借阅登记', case_files: '案卷', chase_overdue: '催办超时案件', close_selected: '结案所选',
    selected: '已选 {n} 件', bulk_result: '{ok} 件成功，{failed} 件未成功', chased: '已催办 {n} 件',
    report_week: '周投诉汇总', report_visits: '回访汇总', report_inspection: '监察月报', report_claims: '理赔月报',
    report_settlement: '结算月报', week: '周 (该周任一天)', month: '月份', group_by: '分组', download_csv: '下载 CSV',
    trend: '近八周趋势', total: '合计', shortcuts: '快捷键', help_keys: '按 ? 查看快捷键',
    key_next: '下一件', key_prev: '上一件', key_open: '打开', key_search: '搜索', key_new: '受理新来电', key_inbox: '回到工作台',
    key_select: '选中/取消选中', key_help: '快捷键说明', close_help: '关闭',
    details: '详情', yuan: '元', roles: '角色', none: '无',
    sign_on: '单点登录', or_token: '或使用令牌登录', sign_on_failed: '单点登录未完成：',
  },
  en: {
    app: 'kefu service center', sign_in: 'Sign in', sign_out: 'Sign out', token: 'Token (a kefu token or a single sign-on JWT)',
    sign_in_hint: 'An administrator creates your token with kefu token create. It is kept in this tab only.',
    signed_out: 'Signed out.', session_expired: 'Your token is no longer accepted; sign in again.',
    inbox: 'Inbox', new_call: 'Take a call', claims: 'Claims', inspection: 'Inspection', settlement: 'Settlement',
    archives: 'Archives', reports: 'Reports', language: '中文',
    view_open: "My department's open cases", view_overdue: 'Overdue', view_due_today: 'Due today',
    view_awaiting_approval: 'Awaiting approval', view_reopened: 'Reopened', view_paused: 'Waiting on the customer', view_all: 'All',
    by_branch: 'By branch', all_branches: 'All branches', search: 'Search case number, waybill or phone (/)',
    any_category: 'Any category', any_state: 'Any state', any_owner: 'Any department', refresh: 'Refresh',
    case_number: 'Case number', category: 'Category', branch: 'Branch', owner: 'Owner', state: 'State',
    severity: 'Severity', created: 'Received', deadline: 'Deadline', sla: 'SLA', kind: 'Kind',
    nothing: 'No cases match.', truncated: 'Only the newest 2000 cases are shown; narrow the filters.',
    sla_overdue: 'Overdue {t}', sla_due_today: 'Due today, {t} left', sla_on_time: '{t} left', sla_paused: 'Paused, {t} left',
    sla_met: 'Met', sla_missed: 'Missed by {t}', sla_none: '—',
    d: 'd', h: 'h', m: 'm',
    channel: 'Channel', waybill_number: 'Waybill', contact_name: "Customer's name", contact_phone: 'Phone',
    description: 'What happened', customer_request: 'What the customer asks for', submit_call: 'Record',
    taking_call: 'Take a call or letter', read_out: 'Read the case number out to the customer:', open_case: 'Open the case',
    another_call: 'Take another call',
    kind_COMPLAINT: 'Complaint', kind_INQUIRY: 'Inquiry', kind_CONSULTATION: 'Consultation', kind_SUGGESTION: 'Suggestion',
    kind_CHANGE_REQUEST: 'Change request',
    channel_PHONE: 'Phone', channel_LETTER: 'Letter', channel_IN_PERSON: 'In person', channel_ONLINE: 'Online',
    severity_GENERAL: 'General', severity_SERIOUS: 'Serious', severity_CRITICAL: 'Critical',
    state_ROUTED: 'Routed', state_ACCEPTED: 'Accepted', state_RESOLVED: 'Resolved', state_CLOSED: 'Closed',
    state_AWAITING_APPROVAL: 'Awaiting approval', state_NOTIFIED: 'Customer told', state_REOPENED: 'Reopened', state_DUPLICATE: 'Duplicate',
    dept_intake: 'Service center', dept_inspection: 'Inspection', dept_claims: 'Claims', dept_settlement: 'Settlement',
    dept_archives: 'Archives', dept_external: 'External', dept_: 'Whole company',
    fields: 'The case', owner_record: "Owner's record", deadline_rule: 'Deadline rule', paused_for: 'Waited on the customer',
    timeline: 'Timeline', replies: 'Replies to the customer', visits: 'Follow-up visits', related: "The customer's other cases",
    rel_incident: 'Second complaint', rel_duplicate: 'Duplicate', rel_same_waybill: 'Same waybill', rel_same_phone: 'Same phone',
    actions: 'Actions', resolve: 'Resolve', resolution: 'Outcome', cause: 'Cause found', reopen: 'Reopen', reason: 'Reason',
    change_severity: 'Change severity', wait: 'Wait for the customer', resume: 'Resume', note: 'Note',
    approve_outcome: 'Approve the outcome', written_answer: 'Written answer', link_duplicate: 'Mark as duplicate',
    duplicate_of: 'Duplicate of (case number)', unlink_duplicate: 'Not a duplicate', record_reply: 'Record a reply attempt',
    reached: 'The customer was reached', plan_visit: 'Plan a visit', record_visit: 'Record the visit', sign_visit: 'Sign the visit',
    close: 'Close', done: 'Done.', failed: 'Not done', cancel: 'Cancel', send: 'Send', back: 'Back to the inbox',
    not_offered: 'Your role may not do this.', loading: 'Loading…', unavailable: 'Not shown: ',
    approval_queue: "Awaiting a supervisor's approval", quote: 'Compensation quote', amount: 'Amount', rule: 'Rule',
    all_records: 'All records', late_remittances: 'Late COD remittances', waybill: 'Waybill', look_up: 'Look up',
    access_requests: 'Access requests', access_queue: 'Access requests awaiting my signature',
    change_queue: 'Waybill change requests awaiting a supervisor', approve_selected: 'Approve selected',
    refuse_selected: 'Refuse selected', borrowing: 'Borrowing register', case_files: 'Case files',
    chase_overdue: 'Chase overdue cases', close_selected: 'Close selected', selected: '{n} selected',
    bulk_result: '{ok} done, {failed} not done', chased: '{n} chased',
    report_week: 'Weekly complaints', report_visits: 'Visits', report_inspection: 'Inspection (monthly)',
    report_claims: 'Claims (monthly)', report_settlement: 'Settlement (monthly)', week: 'Week (any day of it)', month: 'Month',
    group_by: 'Group by', download_csv: 'Download CSV', trend: 'Last eight weeks', total: 'Total', shortcuts: 'Keyboard shortcuts',
    help_keys: 'Press ? for shortcuts',
    key_next: 'Next case', key_prev: 'Previous case', key_open: 'Open', key_search: 'Search', key_new: 'Take a new call',
    key_inbox: 'Back to the inbox', key_select: 'Select or unselect', key_help: 'These shortcuts', close_help: 'Close',
    details: 'Details', yuan: 'yuan', roles: 'Roles', none: 'none',
    sign_on: 'Sign in with single sign-on', or_token: 'or with a token', sign_on_failed: 'Single sign-on did not finish: ',
  },
};

// Category names in English; Chinese ones come from the routing policy's labels.
const CATEGORY_EN = {
  attitude: 'Staff attitude', branch_violation: 'Branch broke procedure', late_delivery: 'Late delivery',
  late_remittance: 'Late COD remittance', delivery_delay: 'Delivery delay', mis_sort: 'Mis-sorting',
  cargo_damage: 'Cargo damage or loss', paperwork_error: 'Paperwork error', freight_rate: 'Freight rate',
  slow_feedback: 'Slow feedback',
};

// The departments' records are shown field by field; in Chinese, by the handbook's names.
const FIELD_ZH = {
  name: '编号', state: '状态', complaint: '投诉', accept_time: '接收时间', create_time: '创建时间', resolve_time: '处理时间',
  resolution: '处理结果', resolved_by: '处理人', branch: '分公司', category: '类别', deadline: '处理时限',
  deadline_reason: '时限依据', overdue: '已超时', kind: '类型', written_report: '书面报告', report_request: '要求书面报告',
  findings: '查明事实', responsibility: '责任划分', decision: '处罚决定', penalties: '处罚', rectifications: '整改',
  incident: '二次投诉', history: '处理过程', facts: '事实', quote: '赔偿试算', evidence: '证据', investigation: '调查',
  offer_fen: '赔偿报价', counter_offer_fen: '客户还价', agreed_amount_fen: '约定金额', approval_reasons: '审批原因',
  approval: '审批', responsible_share_fen: '责任方承担', insurer_recovery: '保险追偿', missing_documents: '缺少单据',
  waybill_number: '运单号', shipper: '发货人', freight_fen: '运费', payment_method: '付款方式', cod_amount_fen: '代收货款',
  consignee: '收货人', consignee_phone: '收货人电话', cod: '代收货款', change_requests: '更改申请', seizure: '查扣',
  file: '案卷', purpose: '目的', reason: '原因', requester: '申请人', requester_department: '申请部门',
  required_approvals: '需签批', approvals: '签批', expire_time: '有效期至', classification: '密级', location: '存放处',
  close_time: '结案时间', archive_time: '归档时间', retention_rule: '保管期限规则', retain_until: '保管至', legal_hold: '诉讼保全',
  amount_fen: '金额', party: '当事方', violation: '违规', note: '备注', contact_name: '客户姓名', contact_phone: '联系电话',
  description: '投诉内容', customer_request: '客户要求', received_by: '受理人', responsible_unit: '责任单位', channel: '受理方式',
};
const fieldName = (key) => (lang === 'en' ? key : FIELD_ZH[key] || key);

let lang = localStorage.getItem('kefu.lang') === 'en' ? 'en' : 'zh-CN';

function t(key, vars = {}) {
  let text = WORDS[lang][key] ?? WORDS['zh-CN'][key] ?? key;
  for (const [name, value] of Object.entries(vars)) text = text.replace(`{${name}}`, value);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Building the page: elements with text, never HTML.

function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

// Leaves out what is not there (`cond ? element : null`), as h() does.
const present = (children) => children.flat(Infinity).filter((child) => child !== null && child !== undefined && child !== false);

// Every navigation is a new generation: a page whose data arrives after the person has moved on
// (a slow inbox, then a click on 理赔部) must not draw over the newer page.
let generation = 0;

function show(...children) {
  document.getElementById('main').replaceChildren(...present(children));
}

function toast(text, error = false) {
  const note = h('div', { class: error ? 'error' : '' }, text);
  document.getElementById('toast').append(note);
  setTimeout(() => note.remove(), error ? 8000 : 4000);
}

// ---------------------------------------------------------------------------------------------
// The server: every call as the person signed in.

const session = { token: sessionStorage.getItem('kefu.token') || '', caller: null, settings: null };

class ApiError extends Error {
  constructor(body, status) {
    super(body.message || `HTTP ${status}`);
    this.code = body.code || 'UNKNOWN';
    this.violations = body.violations || [];
  }
}

async function api(path, body = {}) {
  const response = await fetch(`/api/${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.token}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  let value;
  try { value = text ? JSON.parse(text) : {}; } catch { value = { code: 'UNKNOWN', message: text }; }
  if (!response.ok) {
    const error = new ApiError(value, response.status);
    if (response.status === 401 && session.caller) signOut(t('session_expired'));
    throw error;
  }
  return value;
}

const call = (method, body) => api(`call/${method}`, body);
const can = (method) => Boolean(session.caller?.methods?.includes(method));
// A request id is a UUIDv7: its first 48 bits are the time in milliseconds, so each new key joins
// the request-id index at its end rather than at a random place (docs/benchmarks.md, ninth round).
const requestId = () => {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let time = Date.now();
  for (let i = 5; i >= 0; i--) { bytes[i] = time % 256; time = Math.floor(time / 256); }
  bytes[6] = (bytes[6] & 0x0f) | 0x70;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

function explain(error) {
  const lines = [error.message];
  for (const violation of error.violations || []) lines.push(`${violation.field}: ${violation.description}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Showing values.

function formatTime(text) {
  if (!text) return '';
  const zone = session.settings?.zone || 'Asia/Shanghai';
  return new Intl.DateTimeFormat(lang === 'en' ? 'en-GB' : 'zh-CN', {
    timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
  }).format(new Date(text));
}

function formatMinutes(minutes) {
  const days = Math.floor(minutes / 1440), hours = Math.floor((minutes % 1440) / 60), rest = minutes % 60;
  const parts = [];
  if (days) parts.push(`${days}${t('d')}`);
  if (hours) parts.push(`${hours}${t('h')}`);
  if (!days && (rest || !hours)) parts.push(`${rest}${t('m')}`);
  return parts.join(lang === 'en' ? ' ' : '');
}

// The badge says what the server computed; the page only words it.
function slaBadge(sla) {
  const status = sla?.status || 'none';
  return h('span', { class: `badge sla-${status}`, 'data-sla': status }, t(`sla_${status}`, { t: formatMinutes(sla?.minutes || 0) }));
}

const caseNumber = (name) => (name || '').replace(/^complaints\//, '');
const enumWord = (prefix, value) => (value ? t(`${prefix}_${value}`) : '');
const dept = (name) => t(`dept_${name || ''}`);
function categoryLabel(code) {
  if (!code) return '';
  if (lang === 'en') return CATEGORY_EN[code] || code;
  return session.settings?.categories?.find((c) => c.category === code)?.label || code;
}
const yuan = (fen) => (Number(fen || 0) / 100).toFixed(2);

// Any message as a list of its fields; money in fen shown in yuan, times in the company's zone.
function fieldList(value) {
  const list = h('dl', { class: 'fields' });
  for (const [key, item] of Object.entries(value || {})) {
    let shown;
    if (key.endsWith('_fen')) shown = `${yuan(item)} ${t('yuan')}`;
    else if (key.endsWith('_time') || key === 'deadline') shown = formatTime(item);
    else if (Array.isArray(item)) shown = item.every((x) => typeof x !== 'object') ? item.join(', ') : h('div', {}, item.map((x) => fieldList(x)));
    else if (item && typeof item === 'object') shown = fieldList(item);
    else shown = String(item);
    list.append(h('dt', { title: key }, fieldName(key)), h('dd', { 'data-field': key }, shown));
  }
  return list;
}

// ---------------------------------------------------------------------------------------------
// Forms: fields by name, errors from google.rpc.BadRequest shown at the field they name.

function field(name, label, input) {
  input.name = name;
  input.id = `f-${name.replace(/\W/g, '-')}`;
  return h('div', { class: 'field', 'data-name': name }, h('label', { for: input.id }, h('span', {}, label)), input, h('div', { class: 'error' }));
}

function select(options, value) {
  const element = h('select', {}, options.map(([v, label]) => h('option', { value: v }, label)));
  if (options.some(([v]) => v === value)) element.value = value;
  return element;
}

function clearErrors(form) {
  form.querySelectorAll('.field .error').forEach((e) => { e.textContent = ''; });
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  form.querySelector('.form-errors')?.replaceChildren();
}

// Puts each violation under its field (`complaint.contact.phone` at the field `contact.phone`).
function showErrors(form, error) {
  const rest = [];
  for (const violation of error.violations || []) {
    const parts = violation.field.split('.');
    let found = null;
    for (let i = 0; i < parts.length && !found; i++) {
      found = form.querySelector(`.field[data-name="${CSS.escape(parts.slice(i).join('.'))}"]`);
    }
    if (found) {
      found.querySelector('.error').textContent = violation.description;
      found.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
    } else rest.push(`${violation.field}: ${violation.description}`);
  }
  const box = form.querySelector('.form-errors');
  if (box) box.replaceChildren(h('div', {}, error.violations?.length ? '' : error.message), ...rest.map((r) => h('div', {}, r)));
  form.querySelector('[aria-invalid=true]')?.focus();
}

// A form whose submission calls `method`; the button is disabled while the call runs, so a double
// click sends once, and the request id stays the same until the call succeeds.
function actionForm({ method, title, fields, body, onDone }) {
  const id = requestId();
  const button = h('button', { class: 'primary', type: 'submit' }, t('send'));
  const form = h('form', { class: 'action-form', 'data-method': method },
    h('strong', {}, title), fields, h('div', { class: 'form-errors' }),
    h('div', { class: 'actions' }, button, h('button', { type: 'button', onclick: () => form.remove() }, t('cancel'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    try {
      const result = await call(method, body(new FormData(form), id));
      toast(t('done'));
      form.remove();
      onDone?.(result);
    } catch (error) {
      showErrors(form, error);
      toast(`${t('failed')}: ${error.message}`, true);
    } finally {
      button.disabled = false;
    }
  });
  setTimeout(() => form.querySelector('input, select, textarea')?.focus(), 0);
  return form;
}

// A form for any method, built from its request's fields (`/api/describe`): for the departments'
// many actions. `fixed` fills fields the page knows (the record's name, a request id).
async function describedForm(method, fixed, onDone) {
  const description = await api('describe', { method });
  const scalar = (f) => !f.repeated && f.kind !== 'message';
  // One input per scalar field; a message of scalars as one input per inner field
  // (`author.kind`, `author.id`); a list of text as one line each; a list of messages as JSON,
  // started from one empty element.
  const inputFor = (f) => {
    if (f.kind === 'bool') return h('input', { type: 'checkbox', value: 'true' });
    if (f.kind === 'enum') return select([['', '—'], ...f.values.map((v) => [v, v])]);
    if (f.repeated && f.kind === 'string') return h('textarea', { 'data-lines': 'true' });
    if (f.repeated || f.kind === 'message') {
      const example = Object.fromEntries((f.fields || []).map((x) => [x.name, x.kind === 'message' ? {} : x.kind === 'bool' ? false : '']));
      const template = JSON.stringify(f.repeated ? [example] : example);
      const area = h('textarea', { 'data-json': 'true', 'data-template': template });
      area.value = template;
      return area;
    }
    if (f.name.endsWith('_fen')) return h('input', { type: 'number', step: '0.01', 'data-fen': 'true' });
    if (/int|fixed/.test(f.kind)) return h('input', { type: 'number', step: '1' });
    if (f.kind === 'timestamp') return h('input', { type: 'datetime-local' });
    return h('input', { type: 'text' });
  };
  const label = (name) => (name.endsWith('_fen') ? `${name.replace(/_fen$/, '')} (${t('yuan')})` : name);
  const inputs = [];
  for (const f of description.fields) {
    if (f.name in fixed || f.name === 'request_id') continue;
    if (f.kind === 'message' && !f.repeated && (f.fields || []).length && f.fields.every(scalar)) {
      for (const inner of f.fields) inputs.push([{ ...inner, path: [f.name, inner.name] }, field(`${f.name}.${inner.name}`, `${f.name}.${label(inner.name)}`, inputFor(inner))]);
    } else {
      const input = inputFor(f);
      inputs.push([{ ...f, path: [f.name], template: input.dataset.template }, field(f.name, label(f.name), input)]);
    }
  }
  const place = (request, path, value) => {
    let at = request;
    for (const key of path.slice(0, -1)) at = at[key] ||= {};
    at[path[path.length - 1]] = value;
  };
  return actionForm({
    method, title: method.split('/')[1], fields: inputs.map(([, element]) => element),
    body: (data, id) => {
      const request = { ...fixed };
      if (description.fields.some((f) => f.name === 'request_id')) request.request_id = id;
      for (const [f] of inputs) {
        const raw = data.get(f.path.join('.'));
        if (f.kind === 'bool') { if (raw) place(request, f.path, true); continue; }
        // Left empty, or as the untouched template: not sent.
        if (raw === null || raw === '' || raw === f.template) continue;
        let value = raw;
        if (f.repeated && f.kind === 'string') value = raw.split('\n').map((line) => line.trim()).filter(Boolean);
        else if (f.kind === 'message' || f.repeated) { try { value = JSON.parse(raw); } catch { value = raw; } }
        else if (f.name.endsWith('_fen')) value = String(Math.round(Number(raw) * 100));
        else if (f.kind === 'timestamp') value = new Date(raw).toISOString();
        place(request, f.path, value);
      }
      return request;
    },
    onDone,
  });
}

// ---------------------------------------------------------------------------------------------
// Signing in, and the header.

async function signIn(token) {
  session.token = token.trim();
  const caller = await call('kefu.gateway.v1.Tokens/GetCaller', {});
  session.caller = caller;
  sessionStorage.setItem('kefu.token', session.token);
}

// Single sign-on: the authorization code flow with PKCE, the page being a public client. The
// verifier and state stay in this tab; the token the identity provider returns is used as a kefu
// token is, and the gateway verifies it.
const base64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const redirectUri = () => `${location.origin}/`;

async function startSignOn() {
  const signOn = session.settings.sign_on;
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem('kefu.sign-on', JSON.stringify({ verifier, state, back: location.hash }));
  const url = new URL(signOn.authorize_url);
  for (const [key, value] of Object.entries({ response_type: 'code', client_id: signOn.client_id, redirect_uri: redirectUri(),
    scope: signOn.scope, state, code_challenge: challenge, code_challenge_method: 'S256' })) url.searchParams.set(key, value);
  location.assign(url.toString());
}

// Back from the identity provider with `?code=…&state=…` (or `?error=…`): trade the code for a token.
async function finishSignOn() {
  const answer = new URLSearchParams(location.search);
  if (!answer.has('code') && !answer.has('error')) return;
  const saved = JSON.parse(sessionStorage.getItem('kefu.sign-on') || 'null');
  sessionStorage.removeItem('kefu.sign-on');
  history.replaceState(null, '', `/${saved?.back || ''}`);
  if (answer.has('error')) throw new Error(answer.get('error_description') || answer.get('error'));
  if (!saved || answer.get('state') !== saved.state) throw new Error('the answer is not to this tab\'s request; sign in again');
  const signOn = session.settings.sign_on;
  const response = await fetch(signOn.token_url, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'authorization_code', code: answer.get('code'), redirect_uri: redirectUri(),
      client_id: signOn.client_id, code_verifier: saved.verifier }),
  });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(tokens.error_description || tokens.error || `HTTP ${response.status}`);
  // An access token in JWT form is meant for the API; otherwise the ID token says who this is.
  const jwt = (token) => typeof token === 'string' && token.split('.').length === 3;
  await signIn(jwt(tokens.access_token) ? tokens.access_token : tokens.id_token);
}

function signOut(message) {
  session.token = '';
  session.caller = null;
  sessionStorage.removeItem('kefu.token');
  location.hash = '#/';
  renderHeader();
  signInPage(message);
}

function signInPage(message) {
  const input = h('input', { type: 'password', autocomplete: 'off', required: true });
  const error = h('div', { class: 'form-errors', role: 'alert' }, message || '');
  const button = h('button', { class: 'primary', type: 'submit' }, t('sign_in'));
  const signOn = session.settings?.sign_on
    ? [h('button', { type: 'button', class: 'primary', 'data-action': 'sign-on', onclick: () => startSignOn().catch((e) => { error.textContent = e.message; }) }, t('sign_on')),
      h('p', { class: 'muted' }, t('or_token'))]
    : null;
  const form = h('form', { class: 'panel signin', 'data-page': 'sign-in' },
    h('h1', {}, t('app')), signOn, field('token', t('token'), input), h('p', { class: 'muted' }, t('sign_in_hint')), error, button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    try {
      await signIn(input.value);
      renderHeader();
      if (!location.hash || location.hash === '#/') location.hash = '#/inbox';
      else route();
    } catch (failure) {
      session.token = '';
      error.textContent = failure.message;
    } finally {
      button.disabled = false;
    }
  });
  show(form);
  input.focus();
}

// What each page needs the caller to be allowed, to be offered at all.
const PAGES = [
  ['inbox', 'kefu.intake.v1.Intake/ListComplaints'],
  ['new', 'kefu.gateway.v1.Complaints/CreateComplaint', 'kefu.intake.v1.Intake/CreateRequest'],
  ['claims', 'kefu.claims.v1.Claims/ListClaims', 'kefu.claims.v1.Claims/QuoteCompensation'],
  ['inspection', 'kefu.inspection.v1.Inspection/ListCases'],
  ['settlement', 'kefu.settlement.v1.Settlement/ListCases', 'kefu.settlement.v1.Settlement/GetWaybill'],
  ['archives', 'kefu.archives.v1.Archives/SearchCaseFiles', 'kefu.archives.v1.Archives/GetAccessRequest'],
  ['reports', 'kefu.intake.v1.Intake/GetComplaintSummary', 'kefu.claims.v1.Claims/GetMonthlyClaimsReport',
    'kefu.inspection.v1.Inspection/GetMonthlyReport', 'kefu.settlement.v1.Settlement/GetMonthlySummary'],
];
const pageLabel = { inbox: 'inbox', new: 'new_call', claims: 'claims', inspection: 'inspection', settlement: 'settlement', archives: 'archives', reports: 'reports' };

function renderHeader() {
  const top = document.getElementById('top');
  const language = h('button', { type: 'button', 'data-action': 'language', onclick: () => {
    lang = lang === 'en' ? 'zh-CN' : 'en';
    localStorage.setItem('kefu.lang', lang);
    document.documentElement.lang = lang;
    renderHeader();
    if (session.caller) route(); else signInPage();
  } }, t('language'));
  document.documentElement.lang = lang;
  if (!session.caller) {
    top.replaceChildren(h('span', { class: 'brand' }, t('app')), h('nav'), language);
    return;
  }
  const current = (location.hash.split('/')[1] || 'inbox').split('?')[0];
  const nav = h('nav', {}, PAGES.filter(([, ...methods]) => methods.some(can)).map(([page]) =>
    h('a', { href: `#/${page}`, class: page === current ? 'current' : '', 'data-nav': page }, t(pageLabel[page]))));
  const caller = session.caller;
  const who = h('span', { class: 'who', 'data-caller': caller.subject, title: `${t('roles')}: ${caller.roles.join(', ')}` },
    `${caller.subject} · ${dept(caller.department)}${caller.branch ? ` · ${caller.branch}` : ''} · ${caller.roles.join(', ')}`);
  top.replaceChildren(h('span', { class: 'brand' }, t('app')), nav, who, language,
    h('button', { type: 'button', onclick: () => signOut(t('signed_out')) }, t('sign_out')));
}

// ---------------------------------------------------------------------------------------------
// The inbox.

const VIEWS = ['open', 'overdue', 'due_today', 'awaiting_approval', 'reopened', 'paused', 'all'];
const OWNED = ['inspection', 'claims', 'settlement'];
const inbox = { query: null, rows: [], selected: 0, checked: new Set() };

function defaultQuery() {
  const department = session.caller?.department;
  return { view: 'open', owner: OWNED.includes(department) ? department : '', branch: '', category: '', state: '', search: '', sort: 'deadline' };
}

async function inboxPage() {
  inbox.query ||= defaultQuery();
  const q = inbox.query;
  const mine = generation;
  show(h('p', { class: 'loading' }, t('loading')));
  let answer;
  try {
    answer = await api('inbox', q);
    if (mine !== generation) return;
  } catch (error) {
    if (mine !== generation) return;
    show(h('div', { class: 'panel form-errors', role: 'alert' }, explain(error)));
    return;
  }
  inbox.rows = answer.rows;
  inbox.selected = Math.min(inbox.selected, Math.max(0, answer.rows.length - 1));
  inbox.checked = new Set([...inbox.checked].filter((name) => answer.rows.some((row) => row.name === name)));
  const set = (changes) => { Object.assign(inbox.query, changes); inbox.selected = 0; inboxPage(); };

  const views = h('div', { class: 'views panel', 'data-views': '' },
    VIEWS.map((view) => h('button', { type: 'button', class: view === answer.view ? 'current' : '', 'data-view': view, onclick: () => set({ view, search: '' }) },
      h('span', {}, t(`view_${view}`)), h('span', { class: 'count', 'data-count': view }, answer.counts[view]))),
    h('h2', {}, t('by_branch')),
    h('button', { type: 'button', class: q.branch ? '' : 'current', onclick: () => set({ branch: '' }) }, t('all_branches')),
    answer.branches.map(({ branch, open }) => h('button', { type: 'button', class: q.branch === branch ? 'current' : '', 'data-branch': branch, onclick: () => set({ branch }) },
      h('span', {}, branch || '—'), h('span', { class: 'count' }, open))));

  const search = h('input', { type: 'search', placeholder: t('search'), value: q.search, 'data-search': '' });
  search.addEventListener('keydown', (event) => { if (event.key === 'Enter') set({ search: search.value.trim() }); });
  const categories = select([['', t('any_category')], ...(session.settings?.categories || []).map((c) => [c.category, categoryLabel(c.category)])], q.category);
  categories.addEventListener('change', () => set({ category: categories.value }));
  const states = select([['', t('any_state')], ...Object.keys(WORDS.en).filter((k) => k.startsWith('state_')).map((k) => [k.slice(6), t(k)])], q.state);
  states.addEventListener('change', () => set({ state: states.value }));
  const owners = select([['', t('any_owner')], ...['intake', ...OWNED].map((o) => [o, dept(o)])], q.owner);
  owners.addEventListener('change', () => set({ owner: owners.value }));
  const filters = h('div', { class: 'filters' }, search, categories, states, owners,
    h('button', { type: 'button', onclick: () => inboxPage() }, t('refresh')));

  const sortable = (key, label) => h('th', {}, h('button', { class: 'sort', type: 'button', onclick: () => set({ sort: q.sort === key ? `-${key}` : key }) },
    label, q.sort === key ? ' ▲' : q.sort === `-${key}` ? ' ▼' : ''));
  const table = h('table', { 'data-inbox': '' },
    h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, t('case_number')), sortable('category', t('category')), sortable('branch', t('branch')),
      h('th', {}, t('owner')), sortable('state', t('state')), h('th', {}, t('severity')), sortable('created', t('created')),
      sortable('deadline', t('deadline')), h('th', {}, t('sla')))),
    h('tbody', {}, answer.rows.map((row, index) => {
      const box = h('input', { type: 'checkbox', 'aria-label': caseNumber(row.name), checked: inbox.checked.has(row.name),
        onclick: (event) => { event.stopPropagation(); toggleChecked(row.name); } });
      return h('tr', { class: index === inbox.selected ? 'selected' : '', 'data-case': caseNumber(row.name), onclick: () => openCase(row.name) },
        h('td', {}, box),
        h('td', { class: 'nowrap' }, h('a', { href: `#/case/${caseNumber(row.name)}` }, caseNumber(row.name)),
          row.incident ? h('span', { class: 'tag incident' }, t('rel_incident')) : null),
        h('td', {}, row.kind && row.kind !== 'COMPLAINT' ? `${enumWord('kind', row.kind)} · ` : '', categoryLabel(row.category)),
        h('td', {}, row.branch || ''), h('td', {}, dept(row.owner)), h('td', {}, enumWord('state', row.state)),
        h('td', {}, enumWord('severity', row.severity)), h('td', { class: 'nowrap' }, formatTime(row.create_time)),
        h('td', { class: 'nowrap' }, formatTime(row.deadline)), h('td', {}, slaBadge(row.sla)));
    })));

  const bulk = h('div', { class: 'bulk' });
  const renderBulk = () => {
    bulk.replaceChildren();
    if (can('kefu.intake.v1.Intake/ChaseOverdue')) {
      bulk.append(h('button', { type: 'button', 'data-action': 'chase', onclick: async () => {
        try { const result = await call('kefu.intake.v1.Intake/ChaseOverdue', {}); toast(t('chased', { n: (result.chased || []).length })); inboxPage(); }
        catch (error) { toast(explain(error), true); }
      } }, t('chase_overdue')));
    }
    if (inbox.checked.size) {
      bulk.append(h('span', {}, t('selected', { n: inbox.checked.size })));
      if (can('kefu.intake.v1.Intake/CloseComplaint')) {
        bulk.append(h('button', { type: 'button', 'data-action': 'close-selected', onclick: () =>
          bulkCall([...inbox.checked], (name) => call('kefu.intake.v1.Intake/CloseComplaint', { name, request_id: requestId() })) }, t('close_selected')));
      }
    }
  };
  inbox.renderBulk = renderBulk;
  renderBulk();

  show(h('h1', {}, t('inbox')), h('div', { class: 'inbox', 'data-page': 'inbox' }, views,
    h('div', { class: 'grow' }, filters, bulk,
      answer.truncated ? h('p', { class: 'muted' }, t('truncated')) : null,
      answer.rows.length ? table : h('p', { class: 'muted panel' }, t('nothing')),
      h('p', { class: 'muted' }, t('help_keys')))));
}

function toggleChecked(name) {
  if (inbox.checked.has(name)) inbox.checked.delete(name); else inbox.checked.add(name);
  document.querySelectorAll('tbody tr').forEach((tr) => {
    const box = tr.querySelector('input[type=checkbox]');
    if (box) box.checked = inbox.checked.has(`complaints/${tr.dataset.case}`);
  });
  inbox.renderBulk?.();
}

// Runs one call per selected name, says how many went through (and why the first failed), then
// `after()`: the one way every bulk action in the console reports.
async function bulk(names, one, after) {
  const results = await Promise.allSettled(names.map(one));
  const failed = results.filter((r) => r.status === 'rejected');
  toast(t('bulk_result', { ok: results.length - failed.length, failed: failed.length }), failed.length > 0);
  if (failed.length) toast(explain(failed[0].reason), true);
  after();
}

function bulkCall(names, one) {
  return bulk(names, one, () => { inbox.checked.clear(); inboxPage(); });
}

function openCase(name) { location.hash = `#/case/${caseNumber(name)}`; }

function moveSelection(step) {
  const rows = document.querySelectorAll('table[data-inbox] tbody tr');
  if (!rows.length) return;
  inbox.selected = Math.max(0, Math.min(rows.length - 1, inbox.selected + step));
  rows.forEach((row, index) => row.classList.toggle('selected', index === inbox.selected));
  rows[inbox.selected].scrollIntoView({ block: 'nearest' });
}

// ---------------------------------------------------------------------------------------------
// Taking a call: one form for every kind of request.

const KINDS = ['COMPLAINT', 'INQUIRY', 'CONSULTATION', 'SUGGESTION', 'CHANGE_REQUEST'];

function newCallPage() {
  let id = requestId();
  const kind = select(KINDS.filter((k) => (k === 'COMPLAINT' ? can('kefu.gateway.v1.Complaints/CreateComplaint') : can('kefu.intake.v1.Intake/CreateRequest')))
    .map((k) => [k, t(`kind_${k}`)]));
  const category = select([['', '—'], ...(session.settings?.categories || []).map((c) => [c.category, categoryLabel(c.category)])]);
  const channel = select(['PHONE', 'LETTER', 'IN_PERSON', 'ONLINE'].map((c) => [c, t(`channel_${c}`)]), 'PHONE');
  const severity = select(['GENERAL', 'SERIOUS', 'CRITICAL'].map((s) => [s, t(`severity_${s}`)]), 'GENERAL');
  const button = h('button', { class: 'primary', type: 'submit', 'data-action': 'file' }, t('submit_call'));
  const result = h('div', { 'data-filed': '' });
  const form = h('form', { class: 'panel', 'data-page': 'new' },
    h('div', { class: 'grid3' }, field('kind', t('kind'), kind), field('category', t('category'), category), field('channel', t('channel'), channel)),
    h('div', { class: 'grid3' }, field('waybill_number', t('waybill_number'), h('input', { type: 'text' })),
      field('branch', t('branch'), h('input', { type: 'text', value: session.caller?.branch || '' })), field('severity', t('severity'), severity)),
    h('div', { class: 'grid2' }, field('contact.name', t('contact_name'), h('input', { type: 'text', autocomplete: 'off' })),
      field('contact.phone', t('contact_phone'), h('input', { type: 'tel', autocomplete: 'off' }))),
    field('description', t('description'), h('textarea', {})),
    field('customer_request', t('customer_request'), h('textarea', {})),
    h('div', { class: 'form-errors', role: 'alert' }), button);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    clearErrors(form);
    button.disabled = true;
    const data = new FormData(form);
    const fields = {
      category: data.get('category') || undefined, waybill_number: data.get('waybill_number') || undefined,
      channel: data.get('channel'), description: data.get('description') || undefined,
      customer_request: data.get('customer_request') || undefined, branch: data.get('branch') || undefined,
      severity: data.get('severity'), contact: { name: data.get('contact.name') || undefined, phone: data.get('contact.phone') || undefined },
    };
    try {
      const filed = data.get('kind') === 'COMPLAINT'
        ? await call('kefu.gateway.v1.Complaints/CreateComplaint', { request_id: id, complaint: fields })
        : await call('kefu.intake.v1.Intake/CreateRequest', { request_id: id, request: { ...fields, kind: data.get('kind') } });
      id = requestId();
      let acknowledgement = '';
      try {
        const replies = await call('kefu.intake.v1.Intake/ListReplies', { complaint: filed.name, page_size: 10 });
        acknowledgement = (replies.replies || []).find((r) => r.purpose === 'ACKNOWLEDGEMENT')?.text || '';
      } catch { /* a branch system may not read replies */ }
      form.hidden = true;
      result.replaceChildren(h('div', { class: 'panel' },
        h('p', {}, t('read_out')), h('div', { class: 'case-number', 'data-case-number': caseNumber(filed.name) }, caseNumber(filed.name)),
        acknowledgement ? h('p', { class: 'ack', 'data-acknowledgement': '' }, acknowledgement) : null,
        h('div', { class: 'actions' }, h('a', { class: 'button', href: `#/case/${caseNumber(filed.name)}` }, t('open_case')),
          h('button', { type: 'button', onclick: () => newCallPage() }, t('another_call')))));
    } catch (error) {
      showErrors(form, error);
    } finally {
      button.disabled = false;
    }
  });
  show(h('h1', {}, t('taking_call')), form, result);
  kind.focus();
}

// ---------------------------------------------------------------------------------------------
// A case.

let casePoll = null;

async function casePage(number) {
  clearTimeout(casePoll);
  let answer;
  try {
    answer = await api('case', { name: number });
  } catch (error) {
    show(h('div', { class: 'panel form-errors', role: 'alert' }, explain(error)), h('a', { href: '#/inbox' }, t('back')));
    return;
  }
  if (location.hash !== `#/case/${number}`) return;
  const c = answer.complaint;
  const name = c.name;
  const reload = () => casePage(number);
  const actions = h('div', { class: 'actions', 'data-actions': '' });
  const forms = h('div');
  const offer = (method, label, build) => {
    if (!can(method)) return;
    actions.append(h('button', { type: 'button', 'data-method': method.split('/')[1], onclick: () => forms.replaceChildren(build()) }, label));
  };
  const open = !['RESOLVED', 'NOTIFIED', 'CLOSED', 'DUPLICATE'].includes(c.state);
  const text = (n, label) => field(n, label, h('input', { type: 'text' }));
  const area = (n, label) => field(n, label, h('textarea', {}));
  const simple = (method, label, inputs, extra = (d) => ({})) => offer(`kefu.intake.v1.Intake/${method}`, label, () => actionForm({
    method: `kefu.intake.v1.Intake/${method}`, title: label, fields: inputs,
    body: (data, id) => ({ name, request_id: id, ...Object.fromEntries([...data.entries()].filter(([, v]) => v !== '')), ...extra(data) }),
    onDone: reload,
  }));
  if (open) simple('ResolveComplaint', t('resolve'), [area('resolution', t('resolution')), text('cause', t('cause'))]);
  if (c.state === 'AWAITING_APPROVAL') simple('ApproveOutcome', t('approve_outcome'), [area('written_answer', t('written_answer'))]);
  if (['RESOLVED', 'NOTIFIED'].includes(c.state)) simple('ReopenComplaint', t('reopen'), [area('reason', t('reason'))]);
  if (open) {
    offer('kefu.intake.v1.Intake/ChangeSeverity', t('change_severity'), () => actionForm({
      method: 'kefu.intake.v1.Intake/ChangeSeverity', title: t('change_severity'),
      fields: [field('severity', t('severity'), select(['GENERAL', 'SERIOUS', 'CRITICAL'].map((s) => [s, t(`severity_${s}`)]), c.severity)), area('reason', t('reason'))],
      body: (data) => ({ name, severity: data.get('severity'), reason: data.get('reason') }), onDone: reload }));
    if (c.waiting_since) {
      offer('kefu.intake.v1.Intake/ResumeComplaint', t('resume'), () => actionForm({ method: 'kefu.intake.v1.Intake/ResumeComplaint', title: t('resume'),
        fields: [text('note', t('note'))], body: (data) => ({ name, note: data.get('note') }), onDone: reload }));
    } else {
      offer('kefu.intake.v1.Intake/WaitForCustomer', t('wait'), () => actionForm({ method: 'kefu.intake.v1.Intake/WaitForCustomer', title: t('wait'),
        fields: [text('reason', t('reason'))], body: (data) => ({ name, reason: data.get('reason') }), onDone: reload }));
    }
  }
  if (c.duplicate_of) {
    offer('kefu.intake.v1.Intake/UnlinkDuplicate', t('unlink_duplicate'), () => actionForm({ method: 'kefu.intake.v1.Intake/UnlinkDuplicate', title: t('unlink_duplicate'),
      fields: [text('reason', t('reason'))], body: (data) => ({ name, reason: data.get('reason') }), onDone: reload }));
  } else if (open) {
    offer('kefu.intake.v1.Intake/LinkDuplicate', t('link_duplicate'), () => actionForm({ method: 'kefu.intake.v1.Intake/LinkDuplicate', title: t('link_duplicate'),
      fields: [text('duplicate_of', t('duplicate_of')), text('reason', t('reason'))],
      body: (data) => ({ name, duplicate_of: `complaints/${caseNumber(data.get('duplicate_of').trim())}`, reason: data.get('reason') }), onDone: reload }));
  }
  offer('kefu.intake.v1.Intake/PlanVisit', t('plan_visit'), () => describedFormSync('kefu.intake.v1.Intake/PlanVisit', { parent: name }, forms, reload));
  if (['RESOLVED', 'NOTIFIED'].includes(c.state)) simple('CloseComplaint', t('close'), [text('note', t('note'))]);

  const explanation = answer.deadline;
  const ownerRecord = c.owner_reference ? departmentLink(c.owner, c.owner_reference) : h('span', { class: 'muted' }, '—');
  const replies = answer.replies?.replies || [];
  const visits = answer.visits?.visits || [];

  show(h('div', { 'data-page': 'case', 'data-state': c.state },
    h('div', { class: 'row' }, h('h1', { class: 'grow' }, `${t('case_number')} ${caseNumber(name)} `,
      h('span', { class: 'badge sla-none', 'data-case-state': c.state }, enumWord('state', c.state)), ' ', slaBadge(c.sla)),
      h('a', { href: '#/inbox' }, t('back'))),
    h('div', { class: 'row' },
      h('div', { class: 'grow' },
        h('div', { class: 'panel' }, h('h2', {}, t('fields')), h('dl', { class: 'fields' },
          h('dt', {}, t('kind')), h('dd', {}, enumWord('kind', c.kind || 'COMPLAINT')),
          h('dt', {}, t('category')), h('dd', {}, categoryLabel(c.category)),
          h('dt', {}, t('channel')), h('dd', {}, enumWord('channel', c.channel)),
          h('dt', {}, t('waybill_number')), h('dd', {}, c.waybill_number || ''),
          h('dt', {}, t('branch')), h('dd', {}, c.branch || ''),
          h('dt', {}, t('contact_name')), h('dd', {}, c.contact?.name || ''),
          h('dt', {}, t('contact_phone')), h('dd', {}, c.contact?.phone || ''),
          h('dt', {}, t('description')), h('dd', {}, c.description || ''),
          h('dt', {}, t('customer_request')), h('dd', {}, c.customer_request || ''),
          h('dt', {}, t('severity')), h('dd', {}, enumWord('severity', c.severity)),
          h('dt', {}, t('owner')), h('dd', { 'data-owner': c.owner }, dept(c.owner), c.responsible_unit ? ` · ${c.responsible_unit}` : ''),
          h('dt', {}, t('owner_record')), h('dd', { 'data-owner-reference': c.owner_reference || '' }, ownerRecord),
          h('dt', {}, t('created')), h('dd', {}, formatTime(c.create_time)),
          h('dt', {}, t('deadline')), h('dd', {}, formatTime(c.deadline), ' ', slaBadge(c.sla)),
          c.resolution ? [h('dt', {}, t('resolution')), h('dd', {}, c.resolution)] : null,
          c.incident ? [h('dt', {}, t('rel_incident')), h('dd', {}, caseNumber(c.first_complaint), ' → ', (c.escalated_to || []).join(', '))] : null,
          c.duplicate_of ? [h('dt', {}, t('duplicate_of')), h('dd', {}, h('a', { href: `#/case/${caseNumber(c.duplicate_of)}` }, caseNumber(c.duplicate_of)))] : null)),
        explanation ? h('div', { class: 'panel', 'data-deadline': '' }, h('h2', {}, t('deadline_rule')), h('p', {}, explanation.rule || ''),
          h('ul', {}, (explanation.steps || []).map((step) => h('li', {}, step))),
          explanation.paused && explanation.paused !== '0s' ? h('p', { class: 'muted' }, `${t('paused_for')}: ${explanation.paused}`) : null) : null,
        h('div', { class: 'panel' }, h('h2', {}, t('timeline')), h('ol', { class: 'timeline', 'data-timeline': '' },
          (answer.timeline?.steps || []).map((step) => h('li', {}, h('strong', {}, step.action), ' ', h('span', { class: 'muted' }, `${formatTime(step.time)} · ${step.actor || ''} ${step.department ? `· ${dept(step.department)}` : ''}`),
            step.detail ? h('div', {}, step.detail) : null))))),
      h('div', { class: 'side' },
        h('div', { class: 'panel' }, h('h2', {}, t('actions')), actions.childElementCount ? actions : h('p', { class: 'muted' }, t('not_offered')), forms),
        h('div', { class: 'panel', 'data-related': '' }, h('h2', {}, t('related')),
          (answer.related || []).length ? h('ul', {}, answer.related.map((other) => h('li', {},
            h('a', { href: `#/case/${caseNumber(other.name)}` }, caseNumber(other.name)), h('span', { class: `tag ${other.relation}` }, t(`rel_${other.relation}`)),
            ' ', categoryLabel(other.category), ' ', enumWord('state', other.state), ' ', slaBadge(other.sla)))) : h('p', { class: 'muted' }, t('none'))),
        h('div', { class: 'panel' }, h('h2', {}, t('replies')), replies.length ? h('ul', {}, replies.map((reply) => h('li', {},
          h('div', {}, `${reply.purpose} · ${reply.state} · ${reply.attempts || 0}`), h('div', { class: 'muted' }, reply.text),
          can('kefu.intake.v1.Intake/RecordReplyAttempt') && reply.state !== 'DELIVERED' ? h('button', { type: 'button', onclick: () => forms.replaceChildren(actionForm({
            method: 'kefu.intake.v1.Intake/RecordReplyAttempt', title: t('record_reply'),
            fields: [field('reached', t('reached'), h('input', { type: 'checkbox', value: 'true' })), field('note', t('note'), h('input', { type: 'text' }))],
            body: (data) => ({ name: reply.name, reached: data.get('reached') === 'true', note: data.get('note') }), onDone: reload })) }, t('record_reply')) : null))) : h('p', { class: 'muted' }, t('none'))),
        h('div', { class: 'panel' }, h('h2', {}, t('visits')), visits.length ? h('ul', {}, visits.map((visit) => h('li', {},
          `${formatTime(visit.plan_time)} · ${visit.state} · ${visit.visitor || ''}`,
          can('kefu.intake.v1.Intake/RecordVisit') && visit.state === 'PLANNED' ? h('button', { type: 'button', onclick: () => describedFormSync('kefu.intake.v1.Intake/RecordVisit', { name: visit.name }, forms, reload) }, t('record_visit')) : null,
          can('kefu.intake.v1.Intake/SignVisit') && visit.state === 'RECORDED' ? h('button', { type: 'button', onclick: async () => {
            try { await call('kefu.intake.v1.Intake/SignVisit', { name: visit.name }); reload(); } catch (error) { toast(explain(error), true); }
          } }, t('sign_visit')) : null))) : h('p', { class: 'muted' }, t('none'))),
        answer.unavailable?.length ? h('p', { class: 'muted' }, t('unavailable'), answer.unavailable.map((u) => u.part).join(', ')) : null))));
  // The owner's acceptance arrives by itself: look again while the case waits for it.
  if (c.state === 'ROUTED') casePoll = setTimeout(() => { if (location.hash === `#/case/${number}` && !document.querySelector('.action-form')) reload(); }, 2000);
}

async function describedFormSync(method, fixed, container, onDone) {
  try { container.replaceChildren(await describedForm(method, fixed, onDone)); } catch (error) { toast(explain(error), true); }
}

function departmentLink(owner, reference) {
  const page = { claims: 'claims', inspection: 'inspection', settlement: 'settlement' }[owner];
  return page ? h('a', { href: `#/${page}/${reference}` }, reference) : h('span', {}, reference);
}

// ---------------------------------------------------------------------------------------------
// The departments: their records, each with the actions the caller may take.

const DEPARTMENTS = {
  claims: {
    service: 'kefu.claims.v1.Claims', list: 'ListClaims', items: 'claims', get: 'GetClaim',
    columns: ['name', 'state', 'complaint', 'offer_fen', 'agreed_amount_fen', 'accept_time'],
    actions: ['RecordClaimFacts', 'AttachEvidence', 'RecordInvestigation', 'MakeOffer', 'RecordCustomerResponse', 'ApproveClaim', 'RefuseClaim', 'RecordInsurerRecovery'],
    queue: (item) => item.state === 'AWAITING_APPROVAL',
  },
  inspection: {
    service: 'kefu.inspection.v1.Inspection', list: 'ListCases', items: 'cases', get: 'GetCase',
    columns: ['name', 'state', 'complaint', 'category', 'branch', 'deadline', 'overdue'],
    actions: ['RequestWrittenReport', 'RecordWrittenReport', 'RecordFindings', 'DivideResponsibility', 'DecidePenalties', 'AssignRectification', 'CheckRectification', 'ResolveCase'],
    bulk: 'ChaseOverdueCases',
  },
  settlement: {
    service: 'kefu.settlement.v1.Settlement', list: 'ListCases', items: 'cases', get: 'GetCase',
    columns: ['name', 'complaint', 'accept_time', 'resolve_time', 'resolution'],
    actions: ['ResolveCase'],
  },
};

async function departmentPage(name, record) {
  const department = DEPARTMENTS[name];
  if (record) return recordPage(name, `${department.service}/${department.get}`, record, department.actions.map((a) => `${department.service}/${a}`));
  const parts = [h('h1', {}, t(name))];
  if (name === 'claims' && can('kefu.claims.v1.Claims/QuoteCompensation')) parts.push(quoteWidget());
  if (name === 'settlement') parts.push(...settlementExtras());
  const listMethod = `${department.service}/${department.list}`;
  const mine = generation;
  if (can(listMethod)) {
    try {
      const answer = await call(listMethod, { page_size: 200 });
      if (mine !== generation) return;
      const items = answer[department.items] || [];
      if (department.bulk && can(`${department.service}/${department.bulk}`)) {
        parts.push(h('div', { class: 'bulk' }, h('button', { type: 'button', onclick: async () => {
          try { const result = await call(`${department.service}/${department.bulk}`, {}); toast(t('chased', { n: (result.chased || []).length })); } catch (error) { toast(explain(error), true); }
        } }, t('chase_overdue'))));
      }
      if (department.queue) {
        parts.push(h('h2', {}, t('approval_queue')), recordTable(name, items.filter(department.queue), department.columns, 'queue'));
      }
      parts.push(h('h2', {}, t('all_records')), recordTable(name, items, department.columns, 'records'));
    } catch (error) {
      parts.push(h('div', { class: 'panel form-errors' }, explain(error)));
    }
  }
  if (mine !== generation) return;
  show(h('div', { 'data-page': name }, parts));
}

function recordTable(page, items, columns, label) {
  if (!items.length) return h('p', { class: 'muted panel', 'data-table': label }, t('nothing'));
  return h('table', { 'data-table': label },
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', { title: c }, fieldName(c))))),
    h('tbody', {}, items.map((item) => h('tr', { 'data-record': item.name, onclick: page ? () => { location.hash = `#/${page}/${item.name}`; } : null },
      columns.map((c) => {
        // A record names its complaint, or carries it whole (a claim).
        const value = c === 'complaint' && item[c] && typeof item[c] === 'object' ? item[c].complaint : item[c];
        if (c === 'name') return h('td', { class: 'nowrap' }, page ? h('a', { href: `#/${page}/${item.name}` }, value) : value);
        if (c === 'complaint' && value) return h('td', { class: 'nowrap' }, h('a', { href: `#/case/${caseNumber(value)}`, onclick: (e) => e.stopPropagation() }, caseNumber(value)));
        if (value && typeof value === 'object') return h('td', {}, value.name || '');
        if (c.endsWith('_fen')) return h('td', { class: 'nowrap' }, value === undefined ? '' : yuan(value));
        if (c.endsWith('_time') || c === 'deadline') return h('td', { class: 'nowrap' }, formatTime(value));
        return h('td', {}, value ?? '');
      })))));
}

// One record of a department: its fields, and a form for each action the caller may take.
async function recordPage(page, getMethod, recordName, actions) {
  let record;
  const mine = generation;
  try { record = await call(getMethod, { name: recordName }); } catch (error) {
    if (mine === generation) show(h('div', { class: 'panel form-errors' }, explain(error)));
    return;
  }
  if (mine !== generation) return;
  const forms = h('div');
  const reload = () => recordPage(page, getMethod, recordName, actions);
  const buttons = actions.filter(can).map((method) => h('button', { type: 'button', 'data-method': method.split('/')[1],
    onclick: () => describedFormSync(method, { name: recordName }, forms, reload) }, method.split('/')[1]));
  show(h('div', { 'data-page': `${page}-record`, 'data-state': record.state || '' },
    h('div', { class: 'row' }, h('h1', { class: 'grow' }, `${t(page)} · ${recordName}`), h('a', { href: `#/${page}` }, t('back'))),
    h('div', { class: 'row' }, h('div', { class: 'grow panel' }, h('h2', {}, t('details')), fieldList(record)),
      h('div', { class: 'panel side' }, h('h2', {}, t('actions')),
        buttons.length ? h('div', { class: 'actions', 'data-actions': '' }, buttons) : h('p', { class: 'muted', 'data-actions': '' }, t('not_offered')), forms))));
}

// The claims quote: what the compensation standards give, asked again as the facts are typed.
function quoteWidget() {
  const result = h('div', { 'data-quote': '' });
  const number = (n, label) => field(n, `${label} (${t('yuan')})`, h('input', { type: 'number', step: '0.01', min: '0' }));
  const check = (n) => field(n, n, h('input', { type: 'checkbox', value: 'true' }));
  const packaging = select([['', '—'], ...['INTACT', 'SECONDARY', 'SIMPLE'].map((p) => [p, p])]);
  const accident = select(['TRANSIT_DAMAGE', 'LOSS', 'ROUGH_HANDLING', 'TRAFFIC_ACCIDENT', 'THEFT'].map((a) => [a, a]));
  const form = h('form', { class: 'panel', 'data-quote-form': '' }, h('h2', {}, t('quote')),
    h('div', { class: 'grid3' }, number('declared_value_fen', 'declared_value'), number('loss_market_value_fen', 'loss_market_value'),
      field('accident', 'accident', accident)),
    h('div', { class: 'grid3' }, field('packaging', 'packaging', packaging), check('insured'), check('shipping_list')),
    h('div', { class: 'grid3' }, field('pieces', 'pieces', h('input', { type: 'number', min: '1', value: '1' })),
      field('pieces_affected', 'pieces_affected', h('input', { type: 'number', min: '1', value: '1' })), check('fragile')),
    h('div', { class: 'form-errors' }), result);
  let timer = null;
  const quote = async () => {
    const data = new FormData(form);
    const fen = (n) => String(Math.round(Number(data.get(n) || 0) * 100));
    clearErrors(form);
    try {
      const answer = await call('kefu.claims.v1.Claims/QuoteCompensation', {
        declared_value_fen: fen('declared_value_fen'), loss_market_value_fen: fen('loss_market_value_fen'),
        insured: data.get('insured') === 'true', fragile: data.get('fragile') === 'true',
        pieces: Number(data.get('pieces') || 0), pieces_affected: Number(data.get('pieces_affected') || 0),
        shipping_list: data.get('shipping_list') === 'true', packaging: data.get('packaging') || undefined, accident: data.get('accident'),
      });
      result.replaceChildren(h('div', { class: 'quote-amount', 'data-amount': answer.amount_fen || '0' }, `${yuan(answer.amount_fen)} ${t('yuan')}`),
        h('div', {}, `${t('rule')}: ${answer.rule || ''}`), h('ul', {}, (answer.reasons || []).map((r) => h('li', {}, r))));
    } catch (error) {
      result.replaceChildren();
      showErrors(form, error);
    }
  };
  form.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(quote, 250); });
  form.addEventListener('submit', (e) => { e.preventDefault(); quote(); });
  return form;
}

function settlementExtras() {
  const parts = [];
  if (can('kefu.settlement.v1.Settlement/ListLateRemittances')) {
    const box = h('div', { class: 'panel' }, h('h2', {}, t('late_remittances')), t('loading'));
    call('kefu.settlement.v1.Settlement/ListLateRemittances', { page_size: 100 })
      .then((answer) => {
        const [items] = Object.values(answer).filter(Array.isArray);
        box.replaceChildren(h('h2', {}, t('late_remittances')), items?.length ? h('div', {}, items.map((item) => fieldList(item))) : h('p', { class: 'muted' }, t('nothing')));
      })
      .catch((error) => box.replaceChildren(h('h2', {}, t('late_remittances')), explain(error)));
    parts.push(box);
  }
  if (can('kefu.settlement.v1.Settlement/ListPendingChanges')) {
    // The supervisors' queue: every change request waiting, decided one by one or as a selection.
    const box = h('div', { class: 'panel', 'data-change-queue': '' }, h('h2', {}, t('change_queue')), t('loading'));
    const load = () => call('kefu.settlement.v1.Settlement/ListPendingChanges', { page_size: 100 })
      .then((answer) => {
        const pending = (answer.waybills || []).flatMap((waybill) => (waybill.change_requests || [])
          .filter((request) => request.state === 'pending').map((request) => ({ waybill, request })));
        const reason = h('input', { type: 'text', name: 'reason', placeholder: t('reason') });
        const decide = async (method) => {
          const chosen = [...box.querySelectorAll('input[data-change]:checked')].map((input) => input.dataset.change);
          await bulk(chosen, (name) => call(`kefu.settlement.v1.Settlement/${method}`,
            { name, reason: reason.value, request_id: requestId() }), load);
        };
        box.replaceChildren(...present([h('h2', {}, t('change_queue')),
          pending.length ? h('table', {}, h('tbody', {}, pending.map(({ waybill, request }) => h('tr', { 'data-change-request': request.name },
            h('td', {}, h('input', { type: 'checkbox', 'data-change': request.name, 'aria-label': request.name })),
            h('td', { class: 'nowrap' }, request.name),
            h('td', {}, (request.changes || []).map((change) => h('div', {}, `${change.field}: ${change.before} → ${change.after}`))),
            h('td', {}, request.reason || ''), h('td', {}, request.requested_by || ''),
            h('td', { class: 'nowrap' }, formatTime(request.request_time)), h('td', {}, waybill.branch || ''))))) : h('p', { class: 'muted' }, t('nothing')),
          pending.length && can('kefu.settlement.v1.Settlement/ApproveChange') ? h('div', { class: 'bulk' }, reason,
            h('button', { type: 'button', class: 'primary', 'data-action': 'approve-changes', onclick: () => decide('ApproveChange') }, t('approve_selected')),
            can('kefu.settlement.v1.Settlement/RejectChange') ? h('button', { type: 'button', 'data-action': 'reject-changes', onclick: () => decide('RejectChange') }, t('refuse_selected')) : null) : null]));
      })
      .catch((error) => box.replaceChildren(h('h2', {}, t('change_queue')), explain(error)));
    load();
    parts.push(box);
  }
  if (can('kefu.settlement.v1.Settlement/GetWaybill')) {
    const input = h('input', { type: 'text', placeholder: 'waybills/…' });
    const form = h('form', { class: 'panel filters' }, h('strong', {}, t('waybill')), input, h('button', { type: 'submit' }, t('look_up')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const name = input.value.trim().startsWith('waybills/') ? input.value.trim() : `waybills/${input.value.trim()}`;
      recordPage('settlement', 'kefu.settlement.v1.Settlement/GetWaybill', name,
        ['RecordCodCollection', 'RecordCodRemittance', 'RequestChange', 'ApproveChange', 'RejectChange', 'RecordSeizure', 'RecordShipperNotified', 'ReportSeizureProblem', 'WriteOffSeizure']
          .map((a) => `kefu.settlement.v1.Settlement/${a}`));
    });
    parts.push(form);
  }
  return parts;
}

// Archives: files by search, access requests to sign in bulk.
async function archivesPage(record) {
  const service = 'kefu.archives.v1.Archives';
  if (record) {
    return recordPage('archives', `${service}/GetCaseFile`, record,
      ['ReadCaseFile', 'ClassifyCaseFile', 'SetLegalHold', 'CreateAccessRequest', 'ProposeDestruction'].map((a) => `${service}/${a}`));
  }
  const parts = [h('h1', {}, t('archives'))];
  if (can(`${service}/SearchCaseFiles`)) {
    const waybill = h('input', { type: 'text', placeholder: t('waybill_number') });
    const branch = h('input', { type: 'text', placeholder: t('branch') });
    const results = h('div');
    const form = h('form', { class: 'panel filters' }, h('strong', {}, t('case_files')), waybill, branch, h('button', { type: 'submit' }, t('search')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const answer = await call(`${service}/SearchCaseFiles`, { waybill_number: waybill.value.trim(), branch: branch.value.trim(), page_size: 100 });
        const [files] = Object.values(answer).filter(Array.isArray);
        results.replaceChildren(recordTable('archives', files || [], ['name', 'complaint', 'category', 'branch', 'close_time'], 'files'));
      } catch (error) { results.replaceChildren(h('div', { class: 'form-errors' }, explain(error))); }
    });
    parts.push(form, results);
  }
  if (can(`${service}/ListAccessRequests`)) {
    // The signer's queue: pending requests awaiting the caller's signature, signed in bulk.
    const queue = h('div', { 'data-access-queue': '' }, t('loading'));
    const mine = h('div', { 'data-access-all': '' });
    const load = async () => {
      try {
        const [awaiting, all] = await Promise.all([
          call(`${service}/ListAccessRequests`, { awaiting_my_signature: true, page_size: 200 }),
          call(`${service}/ListAccessRequests`, { page_size: 50 }),
        ]);
        const rows = awaiting.access_requests || [];
        queue.replaceChildren(rows.length ? h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, ''), ['name', 'file', 'kind', 'purpose', 'requester', 'required_approvals', 'create_time'].map((c) => h('th', {}, c)))),
          h('tbody', {}, rows.map((request) => h('tr', { 'data-access-request': request.name },
            h('td', {}, h('input', { type: 'checkbox', checked: true, 'data-access': request.name, 'aria-label': request.name })),
            h('td', {}, request.name), h('td', {}, request.file), h('td', {}, request.kind || ''), h('td', {}, request.purpose || ''),
            h('td', {}, `${request.requester} · ${dept(request.requester_department)}`), h('td', {}, (request.required_approvals || []).join(', ')),
            h('td', { class: 'nowrap' }, formatTime(request.create_time)))))) : h('p', { class: 'muted' }, t('nothing')));
        mine.replaceChildren(recordTable(null, all.access_requests || [], ['name', 'file', 'state', 'requester', 'create_time'], 'access-requests'));
      } catch (error) { queue.replaceChildren(h('div', { class: 'form-errors' }, explain(error))); }
    };
    const signed = async (method) => {
      const chosen = [...queue.querySelectorAll('input[data-access]:checked')].map((box) => box.dataset.access);
      const body = (name) => (method === 'RefuseAccessRequest' ? { name, reason: t('refuse_selected') } : { name });
      await bulk(chosen, (name) => call(`${service}/${method}`, body(name)), load);
    };
    parts.push(h('div', { class: 'panel' }, h('h2', {}, t('access_queue')),
      h('div', { class: 'actions' },
        can(`${service}/ApproveAccessRequest`) ? h('button', { type: 'button', class: 'primary', 'data-action': 'approve-access', onclick: () => signed('ApproveAccessRequest') }, t('approve_selected')) : null,
        can(`${service}/RefuseAccessRequest`) ? h('button', { type: 'button', 'data-action': 'refuse-access', onclick: () => signed('RefuseAccessRequest') }, t('refuse_selected')) : null),
      queue, h('h2', {}, t('access_requests')), mine));
    load();
  }
  show(h('div', { 'data-page': 'archives' }, parts));
}

// ---------------------------------------------------------------------------------------------
// Reports: each department's report as a chart, with its CSV beside it.

const REPORTS = [
  ['report_week', 'kefu.intake.v1.Intake/GetComplaintSummary', 'week'],
  ['report_visits', 'kefu.intake.v1.Intake/GetVisitSummary', 'week'],
  ['report_inspection', 'kefu.inspection.v1.Inspection/GetMonthlyReport', 'month'],
  ['report_claims', 'kefu.claims.v1.Claims/GetMonthlyClaimsReport', 'month'],
  ['report_settlement', 'kefu.settlement.v1.Settlement/GetMonthlySummary', 'month'],
];

function today() {
  const zone = session.settings?.zone || 'Asia/Shanghai';
  return new Intl.DateTimeFormat('en-CA', { timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}

function barChart(pairs, label) {
  const width = 720, bar = 22, gap = 6, left = 200, height = pairs.length * (bar + gap) + 10;
  const most = Math.max(1, ...pairs.map(([, v]) => v));
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('class', 'chart');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  svg.dataset.chart = label;
  pairs.forEach(([name, value], i) => {
    const y = i * (bar + gap) + 5;
    const text = document.createElementNS(svg.namespaceURI, 'text');
    text.setAttribute('x', left - 8); text.setAttribute('y', y + bar * 0.7); text.setAttribute('text-anchor', 'end');
    text.textContent = name;
    const rect = document.createElementNS(svg.namespaceURI, 'rect');
    rect.setAttribute('x', left); rect.setAttribute('y', y); rect.setAttribute('height', bar);
    rect.setAttribute('width', Math.max(1, ((width - left - 60) * value) / most));
    const count = document.createElementNS(svg.namespaceURI, 'text');
    count.setAttribute('x', left + Math.max(1, ((width - left - 60) * value) / most) + 6); count.setAttribute('y', y + bar * 0.7);
    count.textContent = String(value);
    svg.append(text, rect, count);
  });
  return svg;
}

// The numbers of any report: totals maps, and rows grouped by a chosen column.
function chartsOf(report, groupBy) {
  const charts = [];
  const rows = report.rows || report.by_cause || [];
  if (rows.length) {
    const keys = Object.keys(rows[0]).filter((k) => typeof rows[0][k] === 'string');
    const key = keys.includes(groupBy) ? groupBy : keys[0];
    const valueKey = Object.keys(rows[0]).find((k) => !keys.includes(k)) || 'count';
    const sums = new Map();
    for (const row of rows) {
      const name = key === 'category' ? categoryLabel(row[key]) : row[key] || '—';
      sums.set(name, (sums.get(name) || 0) + Number(row[valueKey] || 0));
    }
    charts.push(barChart([...sums].sort((a, b) => b[1] - a[1]), `${key}`));
  }
  for (const [name, value] of Object.entries(report)) {
    if (value && typeof value === 'object' && !Array.isArray(value) && Object.values(value).every((v) => !isNaN(Number(v))) && Object.keys(value).length) {
      charts.push(h('h2', {}, name), barChart(Object.entries(value).map(([k, v]) => [k, Number(v)]), name));
    }
    if (Array.isArray(value) && name.startsWith('by_') && name !== 'by_cause' && value.length) {
      const labelKey = Object.keys(value[0]).find((k) => typeof value[0][k] === 'string');
      const numberKey = Object.keys(value[0]).find((k) => k !== labelKey);
      charts.push(h('h2', {}, name), barChart(value.map((r) => [r[labelKey] || '—', Number(r[numberKey] || 0)]), name));
    }
  }
  return charts;
}

async function reportsPage(which) {
  const available = REPORTS.filter(([, method]) => can(method));
  const [key, method, period] = available.find(([k]) => k === which) || available[0] || [];
  if (!key) { show(h('p', { class: 'muted' }, t('not_offered'))); return; }
  const tabs = h('div', { class: 'tabs' }, available.map(([k]) => h('button', { type: 'button', class: k === key ? 'current' : '', 'data-report': k,
    onclick: () => { location.hash = `#/reports/${k}`; } }, t(k))));
  const input = h('input', { type: period === 'week' ? 'date' : 'month', value: period === 'week' ? today() : today().slice(0, 7) });
  const groupBy = select(['category', 'branch', 'owner', 'kind'].map((g) => [g, g]), 'category');
  const body = h('div', { 'data-report-body': '' });
  const load = async () => {
    body.replaceChildren(t('loading'));
    try {
      const report = await call(method, { [period]: input.value });
      const csv = h('a', { class: 'button', download: `${key}-${input.value}.csv`, 'data-csv': '',
        href: URL.createObjectURL(new Blob([report.csv || ''], { type: 'text/csv' })) }, t('download_csv'));
      const totals = Object.entries(report).filter(([, v]) => typeof v !== 'object' && /^\d+$/.test(String(v)));
      body.replaceChildren(...present([h('div', { class: 'row' }, csv),
        totals.length ? h('dl', { class: 'fields panel' }, totals.map(([k, v]) => [h('dt', {}, k), h('dd', {}, k.endsWith('_fen') ? `${yuan(v)} ${t('yuan')}` : v)])) : null,
        h('div', { class: 'panel' }, chartsOf(report, groupBy.value))]));
      if (key === 'report_week') body.append(await trend(method));
    } catch (error) {
      body.replaceChildren(h('div', { class: 'form-errors' }, explain(error)));
    }
  };
  input.addEventListener('change', load);
  groupBy.addEventListener('change', load);
  show(h('div', { 'data-page': 'reports' }, h('h1', {}, t('reports')), tabs,
    h('div', { class: 'filters' }, h('span', {}, t(period)), input, period === 'week' ? [h('span', {}, t('group_by')), groupBy] : null), body));
  load();
}

// The weekly totals of the last eight weeks, oldest first.
async function trend(method) {
  const days = [];
  const now = new Date(`${today()}T12:00:00Z`);
  for (let i = 7; i >= 0; i--) days.push(new Date(now.getTime() - i * 7 * 86400000).toISOString().slice(0, 10));
  const reports = await Promise.all(days.map((day) => call(method, { week: day }).catch(() => null)));
  const pairs = reports.map((report, i) => [report?.week || days[i], (report?.rows || []).reduce((sum, row) => sum + Number(row.count || 0), 0)]);
  return h('div', { class: 'panel', 'data-trend': '' }, h('h2', {}, t('trend')), barChart(pairs, 'trend'));
}

// ---------------------------------------------------------------------------------------------
// Pages by address, and the keyboard.

async function route() {
  generation += 1;
  clearTimeout(casePoll);
  if (!session.caller) { signInPage(); return; }
  renderHeader();
  const [, page = 'inbox', ...rest] = location.hash.replace(/^#/, '').split('/');
  const record = rest.join('/');
  if (page === 'new') newCallPage();
  else if (page === 'case' && record) await casePage(record);
  else if (page in DEPARTMENTS) await departmentPage(page, record);
  else if (page === 'archives') await archivesPage(record);
  else if (page === 'reports') await reportsPage(record);
  else await inboxPage();
}

function typing(event) {
  const target = event.target;
  return target instanceof HTMLInputElement || target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement || target.isContentEditable;
}

function helpOverlay() {
  const keys = [['j ↓', 'key_next'], ['k ↑', 'key_prev'], ['Enter o', 'key_open'], ['x', 'key_select'], ['/', 'key_search'], ['n', 'key_new'], ['g i / u', 'key_inbox'], ['?', 'key_help']];
  const overlay = h('div', { class: 'help', 'data-help': '', onclick: (e) => { if (e.target === overlay) overlay.remove(); } },
    h('div', { class: 'panel' }, h('h2', {}, t('shortcuts')), h('dl', { class: 'fields' }, keys.map(([k, w]) => [h('dt', {}, h('kbd', {}, k)), h('dd', {}, t(w))])),
      h('button', { type: 'button', onclick: () => overlay.remove() }, t('close_help'))));
  document.body.append(overlay);
}

let pendingG = false;
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape') { document.querySelector('.help')?.remove(); document.querySelector('.action-form')?.remove(); return; }
  if (!session.caller || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const onInbox = document.querySelector('[data-page=inbox]');
  const onCase = document.querySelector('[data-page=case]');
  if (pendingG) { pendingG = false; if (event.key === 'i') { location.hash = '#/inbox'; event.preventDefault(); } return; }
  switch (event.key) {
    case 'g': pendingG = true; setTimeout(() => { pendingG = false; }, 1000); break;
    case '?': helpOverlay(); break;
    case 'n': if (PAGES[1].slice(1).some(can)) location.hash = '#/new'; break;
    case '/': if (onInbox) { event.preventDefault(); document.querySelector('[data-search]')?.focus(); } else location.hash = '#/inbox'; break;
    case 'u': if (onCase) location.hash = '#/inbox'; break;
    case 'j': case 'ArrowDown': case 'k': case 'ArrowUp': {
      const step = event.key === 'j' || event.key === 'ArrowDown' ? 1 : -1;
      if (onInbox) { event.preventDefault(); moveSelection(step); }
      else if (onCase) {
        const number = location.hash.split('/')[2];
        const index = inbox.rows.findIndex((row) => caseNumber(row.name) === number);
        const next = inbox.rows[index + step];
        if (index >= 0 && next) { inbox.selected = index + step; openCase(next.name); }
      }
      break;
    }
    case 'Enter': case 'o': if (onInbox && inbox.rows[inbox.selected]) openCase(inbox.rows[inbox.selected].name); break;
    case 'x': if (onInbox && inbox.rows[inbox.selected]) toggleChecked(inbox.rows[inbox.selected].name); break;
    default: return;
  }
});

window.addEventListener('hashchange', route);

(async function start() {
  renderHeader();
  try { session.settings = await api('settings'); } catch { session.settings = null; }
  try {
    await finishSignOn();
  } catch (error) {
    session.token = '';
    signInPage(`${t('sign_on_failed')}${error.message}`);
    return;
  }
  if (session.token && !session.caller) {
    try { await signIn(session.token); } catch { session.token = ''; sessionStorage.removeItem('kefu.token'); }
  }
  route();
})();
