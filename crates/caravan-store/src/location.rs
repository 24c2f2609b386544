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

    /// Opens a connection, creating the store and running migrations when needed.
    pub fn connect(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Location::DataDir(dir) => Box::new(SqliteBackend::open(dir)?),
            Location::Postgres(url) => Box::new(PostgresBackend::connect(url)?),
        })
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
}
