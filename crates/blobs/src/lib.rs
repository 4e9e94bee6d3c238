//! herald's file storage: the bytes of run files and artifact files, kept apart from the
//! database. [`BlobStore`] is the small trait (put, get, head, delete by [`BlobKey`]);
//! [`ObjectBlobStore`] implements it on the `object_store` crate, on a local directory
//! (`<data_dir>/blobs` by default) or an S3-compatible bucket ([`location`]).
//!
//! This crate knows nothing of HTTP, URLs or the database: signing the URLs clients upload to
//! and download from is the engine's (`herald_engine::blobs`), serving them the API's
//! (`/storage/v1/…`). Keys ([`key`]) are checked when made, so a name from a client cannot
//! leave its prefix; uploads are streamed, checked (size, total, MD5) as they arrive, and
//! committed only whole.
#![forbid(unsafe_code)]

pub mod key;
pub mod location;
mod object;
mod store;

pub use key::{BlobKey, InvalidKey};
pub use location::{open, Location};
pub use object::{Limits, ObjectBlobStore, CHUNK};
pub use store::{Blob, BlobError, BlobStore, ByteStream, PutOptions, Stored};

#[cfg(test)]
mod tests;
