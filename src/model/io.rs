//! The vocabulary of file-operation faults: the classes of file operations a storage
//! fault can filter on and the errno names it may return. Data only; the tracer maps
//! syscalls onto these.

use serde::{Deserialize, Serialize};

/// Classes of file operations a storage fault can filter on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IoOp {
    Open,
    Read,
    Write,
    Fsync,
    /// stat, rename, unlink, mkdir, directory listing.
    Metadata,
}

impl IoOp {
    pub const ALL: [IoOp; 5] = [
        IoOp::Open,
        IoOp::Read,
        IoOp::Write,
        IoOp::Fsync,
        IoOp::Metadata,
    ];
}

/// Errno names a storage fault may use.
pub const ERRNOS: &[(&str, i32)] = &[
    ("EIO", libc::EIO),
    ("ENOSPC", libc::ENOSPC),
    ("EDQUOT", libc::EDQUOT),
    ("EROFS", libc::EROFS),
    ("EACCES", libc::EACCES),
    ("EPERM", libc::EPERM),
    ("EAGAIN", libc::EAGAIN),
    ("EINTR", libc::EINTR),
    ("ENOMEM", libc::ENOMEM),
    ("EBUSY", libc::EBUSY),
    ("ENOENT", libc::ENOENT),
    ("EBADF", libc::EBADF),
];

pub fn errno_by_name(name: &str) -> Option<i32> {
    ERRNOS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}
