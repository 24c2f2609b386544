//! A real full disk for a test: a size-limited tmpfs, mounted in a temporary directory (which
//! needs root) and unmounted when dropped, and a ballast file that fills it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a few MiB mounted for the test; unmounted when dropped, whatever the outcome.
pub struct SmallDisk {
    path: PathBuf,
    _parent: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB; panics, saying why, when it cannot (not root).
    pub fn mount(mib: u32) -> SmallDisk {
        let parent = tempfile::tempdir().expect("a temporary directory");
        let path = parent.path().join("small");
        std::fs::create_dir(&path).expect("a mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a tmpfs at {} (this needs root): {status}",
            path.display()
        );
        SmallDisk {
            path,
            _parent: parent,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a file until the disk has no room left.
    pub fn fill(&self) -> Ballast {
        let path = self.path.join("ballast");
        let mut file = std::fs::File::create(&path).expect("create the ballast");
        let chunk = vec![1u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        Ballast(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The file that fills a [`SmallDisk`].
pub struct Ballast(PathBuf);

impl Ballast {
    /// Deletes the file: the disk has room again.
    pub fn remove(self) {
        std::fs::remove_file(&self.0).expect("remove the ballast");
    }
}
