//! Trees of files handled from open directories, never through a symbolic link: a
//! box's home and vault are shared read-write with its container, which may turn any
//! entry into a link to a host file at any moment, even while we walk.
//!
//! [`dir::Dir`] is an open directory whose every operation is relative to its
//! descriptor; [`walk`] visits a tree in sorted order; [`copy`] copies one (reflinks,
//! hard links to an earlier copy, or plain copies); [`removal`] deletes one; [`link`]
//! decides which symbolic links stay inside a tree. Nothing here knows about boxes.

pub mod copy;
pub mod dir;
pub mod link;
pub mod removal;
pub mod walk;

pub use dir::{Dir, Kind, Stat};

/// How deep a tree may go. Each level holds a few descriptors open, so a box cannot
/// make us run out of them (or of stack) with a directory chain thousands deep.
pub const MAX_DEPTH: usize = 128;
