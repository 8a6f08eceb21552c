//! The archives' tables as the migrations create them, oldest first: case files, customer files
//! and their phones, access requests, the borrowing register and destruction records
//! (`archives_0001_files`); the audit log (`archives_0002_audit`); destruction proposals
//! (`archives_0003_destruction_proposals`). A migration, once run somewhere, is never changed.

use sea_orm::sea_query::{ColumnDef, Index, Table};

use kefu_kit::migrate::{Migration, SchemaStatement};

use super::{
    access_requests::{access_request, borrowing},
    audit_log::{entry, head},
    case_files::case_file,
    customers::{customer, customer_phone},
    destruction::{destruction_proposal, destruction_record},
};

pub static MIGRATION_FILES: Migration = Migration {
    name: "archives_0001_files",
    statements: || {
        let text = |column: &mut ColumnDef| column.text().not_null().to_owned();
        let code = |column: &mut ColumnDef, len: u32| column.string_len(len).not_null().to_owned();
        let time = |column: &mut ColumnDef| column.timestamp_with_time_zone().not_null().to_owned();
        let seq = |column: &mut ColumnDef| column.big_integer().not_null().auto_increment().primary_key().to_owned();
        use access_request::Column as A;
        use borrowing::Column as B;
        use case_file::Column as F;
        use customer::Column as C;
        use customer_phone::Column as P;
        use destruction_record::Column as D;
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(case_file::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(F::Seq)))
                    .col(code(&mut ColumnDef::new(F::CaseNumber), 32).unique_key().to_owned())
                    .col(code(&mut ColumnDef::new(F::Category), 64))
                    .col(code(&mut ColumnDef::new(F::WaybillNumber), 64))
                    .col(code(&mut ColumnDef::new(F::Branch), 64))
                    .col(code(&mut ColumnDef::new(F::Owner), 32))
                    .col(code(&mut ColumnDef::new(F::ContactPhone), 64))
                    .col(ColumnDef::new(F::Customer).string_len(64).null())
                    .col(time(&mut ColumnDef::new(F::CloseTime)))
                    .col(time(&mut ColumnDef::new(F::ArchiveTime)))
                    .col(ColumnDef::new(F::Classification).integer().not_null())
                    .col(ColumnDef::new(F::Content).binary().null())
                    .col(code(&mut ColumnDef::new(F::ContentSha256), 64))
                    .col(code(&mut ColumnDef::new(F::RetentionRule), 64))
                    .col(time(&mut ColumnDef::new(F::RetainUntil)))
                    .col(ColumnDef::new(F::LegalHold).boolean().not_null())
                    .col(text(&mut ColumnDef::new(F::LegalHoldReason)))
                    .col(ColumnDef::new(F::DestroyTime).timestamp_with_time_zone().null())
                    .to_owned(),
            ),
            index("archive_case_files_waybill", case_file::Entity, F::WaybillNumber),
            index("archive_case_files_customer", case_file::Entity, F::Customer),
            index("archive_case_files_phone", case_file::Entity, F::ContactPhone),
            index("archive_case_files_retain_until", case_file::Entity, F::RetainUntil),
            SchemaStatement::Table(
                Table::create()
                    .table(customer::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(C::Seq)))
                    .col(code(&mut ColumnDef::new(C::CustomerId), 64).unique_key().to_owned())
                    .col(ColumnDef::new(C::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(C::ContactName), 128))
                    .col(text(&mut ColumnDef::new(C::Phones)))
                    .col(code(&mut ColumnDef::new(C::Company), 128))
                    .col(code(&mut ColumnDef::new(C::CustomerType), 32))
                    .col(ColumnDef::new(C::Classification).integer().not_null())
                    .col(code(&mut ColumnDef::new(C::Grade), 1))
                    .col(ColumnDef::new(C::Total).integer().not_null())
                    .col(ColumnDef::new(C::ProfitContribution).integer().not_null())
                    .col(ColumnDef::new(C::OrderAmount).integer().not_null())
                    .col(ColumnDef::new(C::CooperationYears).integer().not_null())
                    .col(ColumnDef::new(C::Credit).integer().not_null())
                    .col(ColumnDef::new(C::Prospects).integer().not_null())
                    .col(code(&mut ColumnDef::new(C::ScoredBy), 128))
                    .col(ColumnDef::new(C::ScoreTime).timestamp_with_time_zone().null())
                    .col(time(&mut ColumnDef::new(C::CreateTime)))
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(customer_phone::Entity)
                    .if_not_exists()
                    .col(code(&mut ColumnDef::new(P::Phone), 64).primary_key().to_owned())
                    .col(code(&mut ColumnDef::new(P::CustomerId), 64))
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(access_request::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(A::Seq)))
                    .col(ColumnDef::new(A::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(A::File), 128))
                    .col(code(&mut ColumnDef::new(A::Kind), 16))
                    .col(text(&mut ColumnDef::new(A::Purpose)))
                    .col(text(&mut ColumnDef::new(A::Reason)))
                    .col(ColumnDef::new(A::PersonalData).boolean().not_null())
                    .col(code(&mut ColumnDef::new(A::Requester), 128))
                    .col(code(&mut ColumnDef::new(A::RequesterDepartment), 128))
                    .col(text(&mut ColumnDef::new(A::Required)))
                    .col(text(&mut ColumnDef::new(A::Approvals)))
                    .col(code(&mut ColumnDef::new(A::State), 16))
                    .col(time(&mut ColumnDef::new(A::CreateTime)))
                    .col(ColumnDef::new(A::ExpireTime).timestamp_with_time_zone().null())
                    .col(text(&mut ColumnDef::new(A::RefusalReason)))
                    .col(code(&mut ColumnDef::new(A::RefusedBy), 128))
                    .col(ColumnDef::new(A::Version).integer().not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(borrowing::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(B::Seq)))
                    .col(time(&mut ColumnDef::new(B::Time)))
                    .col(code(&mut ColumnDef::new(B::File), 128))
                    .col(code(&mut ColumnDef::new(B::Reader), 128))
                    .col(code(&mut ColumnDef::new(B::ReaderDepartment), 128))
                    .col(code(&mut ColumnDef::new(B::Kind), 16))
                    .col(code(&mut ColumnDef::new(B::AccessRequest), 64))
                    .col(text(&mut ColumnDef::new(B::Purpose)))
                    .col(ColumnDef::new(B::PersonalDataShown).boolean().not_null())
                    .to_owned(),
            ),
            index("archive_borrowing_file", borrowing::Entity, B::File),
            SchemaStatement::Table(
                Table::create()
                    .table(destruction_record::Entity)
                    .if_not_exists()
                    .col(seq(&mut ColumnDef::new(D::Seq)))
                    .col(ColumnDef::new(D::RequestId).string_len(128).null().unique_key())
                    .col(code(&mut ColumnDef::new(D::CaseFile), 64).unique_key().to_owned())
                    .col(code(&mut ColumnDef::new(D::Category), 64))
                    .col(code(&mut ColumnDef::new(D::ContentSha256), 64))
                    .col(time(&mut ColumnDef::new(D::CloseTime)))
                    .col(code(&mut ColumnDef::new(D::RetentionRule), 64))
                    .col(time(&mut ColumnDef::new(D::RetainUntil)))
                    .col(code(&mut ColumnDef::new(D::ApprovedBy), 128))
                    .col(text(&mut ColumnDef::new(D::Reason)))
                    .col(time(&mut ColumnDef::new(D::DestroyTime)))
                    .to_owned(),
            ),
        ]
    },
};

pub static MIGRATION_AUDIT: Migration = Migration {
    name: "archives_0002_audit",
    statements: || {
        use entry::Column as E;
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(entry::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(E::Seq).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(E::Time).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(E::Actor).string_len(128).not_null())
                    .col(ColumnDef::new(E::Action).string_len(32).not_null())
                    .col(ColumnDef::new(E::Subject).string_len(128).not_null())
                    .col(ColumnDef::new(E::Detail).text().not_null())
                    .col(ColumnDef::new(E::PrevHash).string_len(64).not_null())
                    .col(ColumnDef::new(E::Hash).string_len(64).not_null())
                    .to_owned(),
            ),
            SchemaStatement::Table(
                Table::create()
                    .table(head::Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(head::Column::Id).integer().not_null().primary_key())
                    .col(ColumnDef::new(head::Column::Seq).big_integer().not_null())
                    .col(ColumnDef::new(head::Column::Hash).string_len(64).not_null())
                    .to_owned(),
            ),
        ]
    },
};

pub static MIGRATION_PROPOSALS: Migration = Migration {
    name: "archives_0003_destruction_proposals",
    statements: || {
        use destruction_proposal::{Column as C, Entity};
        vec![SchemaStatement::Table(
            Table::create()
                .table(Entity)
                .if_not_exists()
                .col(ColumnDef::new(C::CaseNumber).string_len(32).not_null().primary_key())
                .col(ColumnDef::new(C::ProposedBy).string_len(128).not_null())
                .col(ColumnDef::new(C::Reason).text().not_null())
                .col(ColumnDef::new(C::ProposeTime).timestamp_with_time_zone().not_null())
                .to_owned(),
        )]
    },
};

fn index(
    name: &str,
    table: impl sea_orm::sea_query::IntoTableRef,
    column: impl sea_orm::sea_query::IntoIndexColumn,
) -> SchemaStatement {
    SchemaStatement::Index(Index::create().if_not_exists().name(name).table(table).col(column).to_owned())
}
