//! Scratch stores for measurements that write: a temporary SQLite directory or a throwaway
//! PostgreSQL database, removed when the measurement is done.

use caravan_store::Location;

/// A fresh store for one ingest run, removed when dropped.
pub struct ScratchStore {
    pub location: Location,
    _dir: Option<tempfile::TempDir>,
    database: Option<(String, String)>,
}

impl ScratchStore {
    pub fn sqlite(parent: &std::path::Path) -> Result<ScratchStore, String> {
        let dir = tempfile::Builder::new()
            .prefix("caravan-bench-")
            .tempdir_in(parent)
            .map_err(|e| {
                format!(
                    "cannot create a scratch directory in {}: {e}",
                    parent.display()
                )
            })?;
        Ok(ScratchStore {
            location: Location::DataDir(dir.path().to_path_buf()),
            _dir: Some(dir),
            database: None,
        })
    }

    pub fn postgres(admin_url: &str, run: u32) -> Result<ScratchStore, String> {
        let name = format!("caravan_bench_{}_{run}", std::process::id());
        let location =
            Location::create_postgres_database(admin_url, &name).map_err(|e| e.to_string())?;
        Ok(ScratchStore {
            location,
            _dir: None,
            database: Some((admin_url.to_string(), name)),
        })
    }
}

impl ScratchStore {
    /// The scratch database's name (none for a SQLite store).
    pub fn name(&self) -> &str {
        self.database.as_ref().map_or("", |(_, name)| name)
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = &self.database
            && let Err(why) = Location::drop_postgres_database(admin_url, name)
        {
            eprintln!("warning: could not drop the scratch database {name}: {why}");
        }
    }
}
