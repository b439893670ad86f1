//! [`Payload`]: the metadata and data every request and response carries.

use bytes::Bytes;

/// Optional metadata plus data, as carried by request and PAYLOAD frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Payload {
    pub metadata: Option<Bytes>,
    pub data: Bytes,
}

impl Payload {
    pub fn new(data: impl Into<Bytes>) -> Self {
        Payload { metadata: None, data: data.into() }
    }

    pub fn with_metadata(data: impl Into<Bytes>, metadata: impl Into<Bytes>) -> Self {
        Payload { metadata: Some(metadata.into()), data: data.into() }
    }

    /// Bytes this payload occupies (metadata and data), for size limits.
    pub fn len(&self) -> usize {
        self.data.len() + self.metadata.as_ref().map_or(0, Bytes::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
