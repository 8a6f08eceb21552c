//! Statements whose SQL is written once per shape, not once per call.
//!
//! sea-query writes a statement's SQL afresh every time one is built, quoting each table and
//! column name with several allocations of its own. On the complaint path that was about a third of
//! the suite's instructions (callgrind; docs/benchmarks.md, "Issue 20, fifth round"): a look-up of
//! complaints names 36 columns, a batch of registrations inserts up to 128 rows of 27. Here the SQL
//! of each shape — the statement, the columns it writes, how many rows or keys — is written once, by
//! sea-query as before, and kept; a call then only binds its values.
//!
//! Invariants:
//! - a shape's SQL depends on nothing but its [`Shape`]: an insert's on its rows' type, the columns
//!   they set and their number; a select's on its label and the number of its values;
//! - the first build of each shape checks that the values this module binds are the values
//!   sea-query bound, in order; where they differ (a bug) debug builds panic and release builds do
//!   not keep the shape, so a wrong SQL is never reused;
//! - at most [`MAX_SHAPES`] shapes are kept (a batch size is a shape: a few thousand in all), so
//!   memory does not grow with traffic.

use std::{
    any::type_name,
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex, PoisonError},
};

use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IdenStatic, Iterable,
    QueryFilter, QueryTrait, Select, Statement, Value,
};

/// Shapes kept at most, over all services of the process.
pub const MAX_SHAPES: usize = 4_096;

/// What a statement's SQL depends on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Shape {
    /// The statement: the rows' type for an insert, the entity's for a look-up by one column, a
    /// label for another select.
    statement: &'static str,
    backend: u8,
    /// For an insert, which of the entity's columns its rows set; for a look-up by one column, that
    /// column (one bit each, in column order).
    columns: u64,
    /// How many rows an insert writes, how many values a select binds.
    size: usize,
}

static KEPT: LazyLock<Mutex<HashMap<Shape, Arc<str>>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The statement of `shape` binding `values`: its kept SQL, or the SQL `build` writes (then kept,
/// if `build` binds the same values).
fn statement(backend: DbBackend, shape: Shape, values: Vec<Value>, build: impl FnOnce() -> Statement) -> Statement {
    let kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner).get(&shape).cloned();
    if let Some(sql) = kept {
        return Statement::from_sql_and_values(backend, &*sql, values);
    }
    let built = build();
    let bound = built.values.as_ref().map(|values| values.0.as_slice()).unwrap_or_default();
    if bound == values.as_slice() {
        let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < MAX_SHAPES {
            kept.insert(shape, Arc::from(built.sql.as_str()));
        }
    } else {
        debug_assert!(false, "{}: the values bound differ from sea-query's: {values:?} / {bound:?}", shape.statement);
    }
    built
}

/// Any other statement: `label` names it, `values` are the values `build` binds, in order; its SQL
/// is kept per label and number of values.
pub fn kept(
    backend: DbBackend,
    label: &'static str,
    values: Vec<Value>,
    build: impl FnOnce() -> Statement,
) -> Statement {
    let shape = Shape { statement: label, backend: backend_id(backend), columns: 0, size: values.len() };
    statement(backend, shape, values, build)
}

fn backend_id(backend: DbBackend) -> u8 {
    match backend {
        DbBackend::Postgres => 0,
        DbBackend::Sqlite => 1,
        DbBackend::MySql => 2,
    }
}

/// Inserts `rows` in one statement: what `Entity::insert_many(rows).exec_without_returning(db)`
/// does, with the statement's SQL kept. Rows that do not all set the same columns are inserted as
/// sea-orm builds them (no shape is kept for them). The number of rows inserted.
pub async fn insert_many<A>(db: &impl ConnectionTrait, rows: impl IntoIterator<Item = A>) -> Result<u64, DbErr>
where
    A: ActiveModelTrait + Send,
{
    let rows: Vec<A> = rows.into_iter().collect();
    if rows.is_empty() {
        return Ok(0);
    }
    let backend = db.get_database_backend();
    let Some((columns, values)) = values_of(&rows) else {
        return Ok(db.execute(A::Entity::insert_many(rows).build(backend)).await?.rows_affected());
    };
    let shape = Shape { statement: type_name::<A>(), backend: backend_id(backend), columns, size: rows.len() };
    let insert = statement(backend, shape, values, || A::Entity::insert_many(rows).build(backend));
    Ok(db.execute(insert).await?.rows_affected())
}

/// The columns the rows set (the same for every row, or `None`) and their values, row by row, in
/// column order: what sea-orm binds for them.
fn values_of<A: ActiveModelTrait>(rows: &[A]) -> Option<(u64, Vec<Value>)> {
    let columns: Vec<_> = <A::Entity as EntityTrait>::Column::iter().collect();
    if columns.len() > 64 {
        return None;
    }
    let mut set = None;
    let mut values = Vec::with_capacity(rows.len() * columns.len());
    for row in rows {
        let mut row_set = 0_u64;
        for (index, column) in columns.iter().enumerate() {
            match row.get(*column) {
                ActiveValue::Set(value) | ActiveValue::Unchanged(value) => {
                    row_set |= 1 << index;
                    values.push(value);
                }
                ActiveValue::NotSet => {}
            }
        }
        match set {
            None => set = Some(row_set),
            Some(set) if set != row_set => return None,
            Some(_) => {}
        }
    }
    Some((set?, values))
}

/// The rows of `E` whose `column` is one of `keys`, in no particular order: what
/// `Entity::find().filter(column.is_in(keys)).all(db)` returns, with the statement's SQL kept.
pub async fn find_in<E, V>(db: &impl ConnectionTrait, column: E::Column, keys: Vec<V>) -> Result<Vec<E::Model>, DbErr>
where
    E: EntityTrait,
    V: Into<Value> + Clone,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Value> = keys.iter().cloned().map(Into::into).collect();
    let name = column.as_str();
    let Some(index) = <E::Column as Iterable>::iter().position(|other| other.as_str() == name).filter(|i| *i < 64)
    else {
        return E::find().filter(column.is_in(keys)).all(db).await;
    };
    find_shaped(db, type_name::<E>(), 1 << index, values, || E::find().filter(column.is_in(keys))).await
}

/// The rows `select` finds, where `label` names the select and `values` are the values it binds,
/// in order (a select's SQL is kept per label and number of values).
pub async fn find<E: EntityTrait>(
    db: &impl ConnectionTrait,
    label: &'static str,
    values: Vec<Value>,
    select: impl FnOnce() -> Select<E>,
) -> Result<Vec<E::Model>, DbErr> {
    find_shaped(db, label, 0, values, select).await
}

async fn find_shaped<E: EntityTrait>(
    db: &impl ConnectionTrait,
    statement_name: &'static str,
    columns: u64,
    values: Vec<Value>,
    select: impl FnOnce() -> Select<E>,
) -> Result<Vec<E::Model>, DbErr> {
    let backend = db.get_database_backend();
    let shape = Shape { statement: statement_name, backend: backend_id(backend), columns, size: values.len() };
    let statement = statement(backend, shape, values, || select().build(backend));
    E::find().from_raw_sql(statement).all(db).await
}

#[cfg(test)]
mod tests {
    use sea_orm::Values;

    use super::*;

    fn select(values: &[i64]) -> Statement {
        let marks = vec!["?"; values.len()].join(", ");
        Statement::from_sql_and_values(
            DbBackend::Sqlite,
            format!("SELECT {marks}"),
            values.iter().map(|value| Value::from(*value)),
        )
    }

    #[test]
    fn a_shape_is_written_once_and_each_call_binds_its_own_values() {
        let values = |values: &[i64]| values.iter().map(|value| Value::from(*value)).collect::<Vec<_>>();
        let first = kept(DbBackend::Sqlite, "tests: two values", values(&[1, 2]), || select(&[1, 2]));
        let second = kept(DbBackend::Sqlite, "tests: two values", values(&[3, 4]), || panic!("written again"));
        assert_eq!(second.sql, first.sql);
        assert_eq!(second.values, Some(Values(values(&[3, 4]))));
        let other = kept(DbBackend::Sqlite, "tests: two values", values(&[5]), || select(&[5]));
        assert_eq!(other.sql, "SELECT ?", "another number of values is another shape");
    }

    #[test]
    #[should_panic(expected = "the values bound differ")]
    fn values_that_differ_from_what_sea_query_binds_are_a_bug() {
        kept(DbBackend::Sqlite, "tests: wrong values", vec![Value::from(1_i64)], || select(&[2]));
    }
}
