//! Reading operator files: regular files only, never through a symbolic link, a FIFO or a device
//! refused before it is opened for reading, UTF-8 without NUL bytes; and the checks of the
//! directories they are read from.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::core::error::{Context, Error, Result};

/// Reads an operator file: it must be a regular file itself (a symbolic link is refused, even one
/// that points inside the directory: a link is how a file from elsewhere slips in), valid UTF-8
/// and free of NUL bytes (SQLite stops reading a statement at a NUL, so what followed it would be
/// skipped silently). A FIFO, socket or device is refused from its metadata, before any open; the
/// file is opened without following links and without blocking, and must still be the file that
/// was looked at. Errors name the file and the fix (exit 2).
pub fn read_source(path: &Path) -> Result<String> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(Error::io(path, e)),
    };
    check_regular(path, &meta)?;
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .at(path)?;
    let opened = f.metadata().at(path)?;
    if !opened.is_file() || opened.ino() != meta.ino() || opened.dev() != meta.dev() {
        return Err(Error::Usage(format!(
            "{}: the file changed while it was being opened; run again when nothing is replacing it",
            path.display()
        )));
    }
    let mut bytes = Vec::with_capacity(opened.len() as usize);
    f.read_to_end(&mut bytes).at(path)?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        Error::BadInput {
            path: path.to_path_buf(),
            line: line_of(bytes, valid),
            message: format!(
                "the file is not valid UTF-8 (byte {} of the file); save it as UTF-8",
                valid + 1
            ),
        }
    })?;
    if let Some(at) = text.bytes().position(|b| b == 0) {
        return Err(Error::BadInput {
            path: path.to_path_buf(),
            line: line_of(text.as_bytes(), at),
            message: format!(
                "the file holds a NUL byte (byte {}); SQLite would stop reading there and skip the rest silently: remove it",
                at + 1
            ),
        });
    }
    Ok(text)
}

/// Refuses anything but a regular file (looked at without following a link).
pub fn check_regular(path: &Path, meta: &fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    let what = if ft.is_symlink() {
        let target = fs::read_link(path)
            .map(|t| format!(" (to {})", t.display()))
            .unwrap_or_default();
        format!("is a symbolic link{target}; operator files are read only as regular files inside their directory: copy the file there instead of linking it")
    } else if ft.is_dir() {
        "is a directory, not a file".to_string()
    } else if ft.is_file() {
        return Ok(());
    } else {
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        format!("is {kind}, not a regular file; it is not read: put a regular file there")
    };
    Err(Error::Usage(format!("{}: {what}", path.display())))
}

/// Refuses a directory of operator files that is a symbolic link (or not a directory).
pub fn check_dir(path: &Path, what: &str) -> Result<()> {
    let meta = fs::symlink_metadata(path).at(path)?;
    if meta.file_type().is_symlink() {
        return Err(Error::Usage(format!(
            "{}: the {what} is a symbolic link; it is not followed: move the directory itself there",
            path.display()
        )));
    }
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: the {what} is not a directory",
            path.display()
        )));
    }
    Ok(())
}

/// 1-based line of byte offset `at`.
fn line_of(bytes: &[u8], at: usize) -> usize {
    1 + bytes[..at.min(bytes.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
}

// ---------------------------------------------------------------------------------------------
// statements
