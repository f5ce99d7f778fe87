//! [`SharedRawDocument`]: a slate document as raw BSON in one shared allocation, what the
//! stores hand out.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bson::{Document, RawDocument, RawDocumentBuf};
use serde::de::DeserializeOwned;

use crate::error::Result;

/// A slate document as raw BSON bytes in one shared allocation: cloning it copies a
/// pointer, reading a field or deserializing it reads the bytes where they are (a
/// [`bson::Document`] is a map with an allocation per key and per value, which a typed
/// read has to walk and copy).
///
/// It dereferences to [`bson::RawDocument`] (`get_str`, `get_i64`, `iter`, ...):
///
/// ```
/// use slates::store::SharedRawDocument;
/// let doc = SharedRawDocument::from_document(&slates::bson::doc! {"name": "Ada", "n": 3})?;
/// assert_eq!(doc.get_str("name")?, "Ada");
///
/// #[derive(serde::Deserialize)]
/// struct Profile { name: String }
/// let profile: Profile = doc.deserialize()?;
/// assert_eq!(profile.name, "Ada");
/// assert_eq!(doc.to_document()?, slates::bson::doc! {"name": "Ada", "n": 3});
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SharedRawDocument(Arc<[u8]>);

impl SharedRawDocument {
    /// `doc` serialized to BSON.
    pub fn from_document(doc: &Document) -> Result<Self> {
        Ok(SharedRawDocument(bson::to_vec(doc)?.into()))
    }

    /// Takes BSON bytes; their framing is checked as [`RawDocument::from_bytes`] checks it
    /// (the length prefix and the final 0), the fields when they are read.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let doc = RawDocumentBuf::from_bytes(bytes).map_err(bson::de::Error::from)?;
        Ok(doc.into())
    }

    /// The document as a [`bson::Document`] (a copy of every field).
    pub fn to_document(&self) -> Result<Document> {
        Ok(bson::from_slice(self.as_bytes())?)
    }

    /// The document deserialized into `T`, straight from the bytes.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T> {
        Ok(bson::from_slice(self.as_bytes())?)
    }

    /// The BSON bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The raw document.
    pub fn as_raw(&self) -> &RawDocument {
        // Always well framed: built from a serialized document or a `RawDocumentBuf`.
        RawDocument::from_bytes(&self.0).expect("a SharedRawDocument holds a framed document")
    }
}

impl Default for SharedRawDocument {
    /// The empty document.
    fn default() -> Self {
        RawDocumentBuf::new().into()
    }
}

impl From<RawDocumentBuf> for SharedRawDocument {
    fn from(doc: RawDocumentBuf) -> Self {
        SharedRawDocument(doc.into_bytes().into())
    }
}

impl From<&RawDocument> for SharedRawDocument {
    fn from(doc: &RawDocument) -> Self {
        SharedRawDocument(doc.as_bytes().into())
    }
}

impl PartialEq<Document> for SharedRawDocument {
    /// Compared as documents (BSON equality: `NaN` is equal to nothing); a document whose
    /// fields cannot be read equals none.
    fn eq(&self, other: &Document) -> bool {
        self.to_document().is_ok_and(|doc| doc == *other)
    }
}

impl Deref for SharedRawDocument {
    type Target = RawDocument;

    fn deref(&self) -> &RawDocument {
        self.as_raw()
    }
}

impl AsRef<RawDocument> for SharedRawDocument {
    fn as_ref(&self) -> &RawDocument {
        self.as_raw()
    }
}

impl Borrow<RawDocument> for SharedRawDocument {
    fn borrow(&self) -> &RawDocument {
        self.as_raw()
    }
}

impl fmt::Debug for SharedRawDocument {
    /// As a document, when its fields can be read (as bytes otherwise).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_document() {
            Ok(doc) => fmt::Debug::fmt(&doc, f),
            Err(_) => fmt::Debug::fmt(self.as_raw(), f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::doc;

    #[test]
    fn round_trips_and_compares_as_bytes() {
        let doc = doc! {"a": 1, "b": {"c": [1, 2]}, "d": f64::NAN};
        let raw = SharedRawDocument::from_document(&doc).unwrap();
        assert_eq!(raw.as_bytes(), bson::to_vec(&doc).unwrap());
        let back = raw.to_document().unwrap();
        assert_eq!(bson::to_vec(&back).unwrap(), raw.as_bytes());
        // Equal bytes are equal documents, NaN included (BSON equality says NaN != NaN).
        assert_eq!(raw, SharedRawDocument::from_document(&back).unwrap());
        assert_eq!(raw.clone(), raw);
        assert_eq!(SharedRawDocument::default().to_document().unwrap(), doc! {});
        assert_eq!(
            format!("{:?}", SharedRawDocument::default()),
            "Document({})"
        );
    }
}
