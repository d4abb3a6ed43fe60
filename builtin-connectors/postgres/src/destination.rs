//! The destination: each batch of records in one transaction, as upserts (create,
//! snapshot and update: insert, or update the row with the record's key) and deletes by
//! key, in the table the `table` setting names for the record (Conduit's semantics).
//!
//! A record's key and `payload.after` must be structured, or raw JSON objects (as
//! Conduit accepts). Values reach PostgreSQL through `jsonb_populate_record`, so the
//! server converts each JSON value to its column's type (numbers into integers and
//! numerics, RFC 3339 strings into timestamps, objects into json/jsonb, arrays into
//! arrays); bytes (base64, as records carry them) are turned into bytea's hex form first.
//! The statements of a batch are pipelined on one connection; the batch is handed over for
//! good when its transaction commits, and nothing of it is when `write` fails.

use crate::config::DestinationConfig;
use crate::{connect, pg_error, quote_ident, values, Connection};
use culvert_domain::{Data, Operation, Record};
use culvert_plugins::connector::{Destination, PluginError};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A PostgreSQL destination.
pub struct PostgresDestination {
    config: DestinationConfig,
    connection: Option<Connection>,
    /// Columns (name -> type as `format_type` writes it) of each table written to.
    columns: HashMap<String, HashMap<String, String>>,
    /// Prepared statements by their SQL.
    statements: HashMap<String, tokio_postgres::Statement>,
}

impl PostgresDestination {
    /// A destination with this configuration (connects in `open`).
    pub fn new(config: DestinationConfig) -> Self {
        Self {
            config,
            connection: None,
            columns: HashMap::new(),
            statements: HashMap::new(),
        }
    }

    /// The columns of `table`, looked up once.
    async fn columns(&mut self, table: &str) -> Result<&HashMap<String, String>, PluginError> {
        if !self.columns.contains_key(table) {
            let client = &self.connection.as_ref().expect("opened").client;
            let rows = client
                .query(
                    "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
                     AND a.attnum > 0 AND NOT a.attisdropped",
                    &[&quote_ident(table)],
                )
                .await
                .map_err(|e| pg_error(format!("reading the columns of table {table:?}"), e))?;
            if rows.is_empty() {
                return Err(PluginError::Other(format!(
                    "setting \"table\": table {table:?} does not exist"
                )));
            }
            let columns = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            self.columns.insert(table.to_owned(), columns);
        }
        Ok(&self.columns[table])
    }

    /// The statement for `sql`, prepared once.
    async fn statement(&mut self, sql: String) -> Result<tokio_postgres::Statement, PluginError> {
        if let Some(statement) = self.statements.get(&sql) {
            return Ok(statement.clone());
        }
        let client = &self.connection.as_ref().expect("opened").client;
        let statement = client
            .prepare(&sql)
            .await
            .map_err(|e| pg_error(format!("preparing {sql:?}"), e))?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// The statement and argument that apply `record`.
    async fn plan(
        &mut self,
        index: usize,
        record: &Record,
    ) -> Result<(tokio_postgres::Statement, Value), PluginError> {
        let fail = |why: String| PluginError::Other(format!("record {index}: {why}"));
        let table = self.config.table.for_record(record).map_err(fail)?;
        if table.is_empty() {
            return Err(fail(
                "setting \"table\": the table name is empty for this record".into(),
            ));
        }
        let key = structured(record.key.as_ref()).map_err(|e| fail(format!("key: {e}")))?;
        let after = structured(record.payload.after.as_ref())
            .map_err(|e| fail(format!("payload.after: {e}")))?;
        let delete = match record.operation {
            Operation::Create | Operation::Snapshot => false,
            Operation::Update if key.is_empty() => {
                return Err(fail("key must be provided on update actions".into()))
            }
            Operation::Update => false,
            Operation::Delete if key.is_empty() => {
                return Err(fail("key must be provided on delete actions".into()))
            }
            Operation::Delete => true,
        };
        let columns = self.columns(&table).await?.clone();
        let mut row = Map::new();
        for (name, value) in key.iter().chain(
            if delete { None } else { Some(&after) }
                .into_iter()
                .flatten(),
        ) {
            let type_name = columns
                .get(name)
                .ok_or_else(|| fail(format!("table {table:?} has no column {name:?}")))?;
            row.insert(name.clone(), values::for_column(type_name, value.clone()));
        }
        let quoted_table = quote_ident(&table);
        let source = format!("jsonb_populate_record(NULL::{quoted_table}, $1::jsonb)");
        let mut key_columns: Vec<&String> = key.keys().collect();
        key_columns.sort();
        let sql = if delete {
            let conditions: Vec<String> = key_columns
                .iter()
                .map(|c| {
                    let c = quote_ident(c);
                    format!("{quoted_table}.{c} = r.{c}")
                })
                .collect();
            format!(
                "DELETE FROM {quoted_table} USING {source} AS r WHERE {}",
                conditions.join(" AND ")
            )
        } else {
            let mut names: Vec<&String> = row.keys().collect();
            names.sort();
            let list: Vec<String> = names.iter().map(|c| quote_ident(c)).collect();
            let list = list.join(", ");
            let mut sql =
                format!("INSERT INTO {quoted_table} ({list}) SELECT {list} FROM {source}");
            if !key_columns.is_empty() {
                let keys: Vec<String> = key_columns.iter().map(|c| quote_ident(c)).collect();
                let updates: Vec<String> = names
                    .iter()
                    .filter(|c| !key.contains_key(c.as_str()))
                    .map(|c| {
                        let c = quote_ident(c);
                        format!("{c} = EXCLUDED.{c}")
                    })
                    .collect();
                if updates.is_empty() {
                    sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
                } else {
                    sql.push_str(&format!(
                        " ON CONFLICT ({}) DO UPDATE SET {}",
                        keys.join(", "),
                        updates.join(", ")
                    ));
                }
            }
            sql
        };
        let statement = self.statement(sql).await?;
        Ok((statement, Value::Object(row)))
    }
}

/// A key or payload as a JSON object: structured data as is, raw data parsed as a JSON
/// object (empty raw data and no data: an empty object), as Conduit's destination does.
fn structured(data: Option<&Data>) -> Result<Map<String, Value>, String> {
    match data {
        None => Ok(Map::new()),
        Some(Data::Structured(map)) => Ok(map.as_map().clone()),
        Some(Data::Raw(bytes)) if bytes.is_empty() => Ok(Map::new()),
        Some(Data::Raw(bytes)) => serde_json::from_slice::<Map<String, Value>>(bytes)
            .map_err(|e| format!("raw data is not a JSON object: {e}")),
    }
}

#[async_trait::async_trait]
impl Destination for PostgresDestination {
    async fn open(&mut self) -> Result<(), PluginError> {
        let mut connection = self.config.connection.clone();
        connection.application_name("culvert-postgres-destination");
        self.connection = Some(connect(&connection, "destination").await?);
        Ok(())
    }

    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        if self.connection.is_none() {
            return Err(PluginError::Other("write before open".into()));
        }
        let mut plan = Vec::with_capacity(records.len());
        for (index, record) in records.iter().enumerate() {
            plan.push(self.plan(index, record).await?);
        }
        let connection = self.connection.as_mut().expect("opened");
        let tx = connection
            .client
            .transaction()
            .await
            .map_err(|e| pg_error("starting a write transaction", e))?;
        // Every statement is sent before the first answer is awaited (tokio-postgres
        // pipelines concurrent requests on one connection).
        let params: Vec<[&(dyn tokio_postgres::types::ToSql + Sync); 1]> =
            plan.iter().map(|(_, row)| [row as _]).collect();
        let results = futures_util::future::join_all(
            plan.iter()
                .zip(&params)
                .map(|((statement, _), params)| tx.execute(statement, params)),
        )
        .await;
        if let Some((index, Err(e))) = results.into_iter().enumerate().find(|(_, r)| r.is_err()) {
            // Dropping the transaction rolls it back: nothing of the batch is written.
            return Err(pg_error(format!("writing record {index}"), e));
        }
        tx.commit()
            .await
            .map_err(|e| pg_error("committing a batch", e))?;
        Ok(())
    }

    async fn teardown(&mut self) -> Result<(), PluginError> {
        self.connection = None;
        Ok(())
    }
}
