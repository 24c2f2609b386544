//! Where a store lives: a data directory (SQLite) or a PostgreSQL URL.

use std::fmt;
use std::path::PathBuf;

use crate::backend::{Backend, StoreError, redact};
use crate::postgres_backend::PostgresBackend;
use crate::sqlite_backend::SqliteBackend;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A directory holding `caravan.db` (created if missing).
    DataDir(PathBuf),
    /// A `postgres://` or `postgresql://` connection URL.
    Postgres(String),
}

impl Location {
    /// A PostgreSQL URL if `database` is given, else the data directory.
    pub fn choose(data_dir: PathBuf, database: Option<&str>) -> Result<Location, StoreError> {
        match database {
            None => Ok(Location::DataDir(data_dir)),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Location::Postgres(url.to_string()))
            }
            Some(other) => Err(StoreError::Io(format!(
                "database `{}` is not a PostgreSQL URL; give postgres://USER@HOST:PORT/DB, or leave it out to use the embedded SQLite store in the data directory",
                redact(other)
            ))),
        }
    }

    /// Creates the empty database `name` on the PostgreSQL server that `admin_url` reaches (as a
    /// user allowed to create databases) and returns its location: for tests and benchmarks that
    /// need a fresh store. `name` must be lower-case letters, digits and underscores.
    pub fn create_postgres_database(admin_url: &str, name: &str) -> Result<Location, StoreError> {
        check_database_name(name)?;
        let mut client = admin_client(admin_url)?;
        client.batch_execute(&format!("CREATE DATABASE {name}"))?;
        let (base, query) = match admin_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (admin_url, String::new()),
        };
        let server = base
            .rsplit_once('/')
            .map(|(server, _)| server)
            .filter(|server| server.contains("://") && !server.ends_with('/'))
            .unwrap_or(base);
        // The same server, so the same parameters (sslmode above all).
        Ok(Location::Postgres(format!("{server}/{name}{query}")))
    }

    /// Drops a database made by [`Location::create_postgres_database`], disconnecting its users.
    pub fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
        check_database_name(name)?;
        let mut client = admin_client(admin_url)?;
        client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
        Ok(())
    }

    /// Opens a connection only to read, beside whatever writer holds the store (see
    /// [`SqliteBackend::open_reader`] and [`PostgresBackend::connect_reader`]).
    pub fn connect_reader(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Location::DataDir(dir) => Box::new(SqliteBackend::open_reader(dir)?),
            Location::Postgres(url) => Box::new(PostgresBackend::connect_reader(url)?),
        })
    }

    /// Opens a connection, creating the store and running migrations when needed.
    pub fn connect(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Location::DataDir(dir) => Box::new(SqliteBackend::open(dir)?),
            Location::Postgres(url) => Box::new(PostgresBackend::connect(url)?),
        })
    }
}

fn admin_client(admin_url: &str) -> Result<postgres::Client, StoreError> {
    crate::postgres_tls::connect(admin_url)
}

fn check_database_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(StoreError::Io(format!(
            "`{name}` is not a usable database name: use up to 63 lower-case letters, digits and underscores, starting with a letter"
        )))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::DataDir(dir) => write!(f, "SQLite in {}", dir.display()),
            Location::Postgres(url) => write!(f, "PostgreSQL at {}", redact(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_print() {
        let location = Location::choose(
            PathBuf::from("x"),
            Some("postgres://app:s3cret@db:5432/caravan"),
        )
        .unwrap();
        assert_eq!(
            location.to_string(),
            "PostgreSQL at postgres://app:***@db:5432/caravan"
        );
        let error = Location::choose(PathBuf::from("x"), Some("mysql://root:pw@h/db"))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("pw@"), "{error}");
        assert!(error.contains("postgres://USER@HOST"), "{error}");
    }

    #[test]
    fn scratch_database_names_cannot_carry_sql() {
        for bad in ["x; DROP DATABASE postgres", "Caps", "9lives", ""] {
            let error =
                Location::create_postgres_database("postgres://nobody@127.0.0.1:1/postgres", bad)
                    .unwrap_err()
                    .to_string();
            assert!(
                error.contains("not a usable database name"),
                "{bad}: {error}"
            );
        }
    }
}
