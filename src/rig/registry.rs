//! `$DATA/rigs.yaml`: rigs added, extended, imported or built on the host, by name.
//! Unknown fields and records survive a rewrite.

use std::path::Path;

use super::Kind;
use crate::document::{DocError, Document};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: Kind,
    pub source: Option<String>,
    pub source_type: Option<String>,
    pub image: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Rigs {
    doc: Document,
    pub records: Vec<(String, Record)>,
}

fn record(fields: &[(String, String)]) -> Record {
    let s = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
    let kind = match s("kind").as_deref() {
        Some("extended") => Kind::Extended,
        Some("template") => Kind::Template,
        _ => Kind::Prefab,
    };
    Record {
        kind,
        source: s("source"),
        source_type: s("source_type"),
        image: s("image"),
    }
}

impl Rigs {
    pub fn load(path: &Path) -> Result<Self, DocError> {
        Self::from_doc(Document::load(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, DocError> {
        Self::from_doc(Document::parse(path, text)?)
    }

    fn from_doc(doc: Document) -> Result<Self, DocError> {
        let records = doc
            .get_records(&["rigs"])?
            .into_iter()
            .map(|(name, fields)| (name, record(&fields)))
            .collect();
        Ok(Self { doc, records })
    }

    pub fn get(&self, name: &str) -> Option<&Record> {
        self.records.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Add or replace a record, keeping the fields of an existing one it does not set.
    pub fn upsert(&mut self, name: &str, rec: &Record) -> Result<(), DocError> {
        if self.get(name).is_none() {
            // Whatever stood under the name was no record: start it afresh.
            self.doc.remove(&["rigs", name]);
        }
        self.doc
            .set(&["rigs", name, "kind"], rec.kind.as_str().into())?;
        for (k, v) in [
            ("source", &rec.source),
            ("source_type", &rec.source_type),
            ("image", &rec.image),
        ] {
            match v {
                Some(v) => self.doc.set(&["rigs", name, k], v.as_str().into())?,
                None => {
                    self.doc.remove(&["rigs", name, k]);
                }
            }
        }
        self.doc.save()?;
        *self = Self::from_doc(self.doc.clone())?;
        Ok(())
    }

    pub fn remove(&mut self, name: &str) -> Result<bool, DocError> {
        let removed = self.doc.remove(&["rigs", name]);
        if removed {
            self.doc.save()?;
            *self = Self::from_doc(self.doc.clone())?;
        }
        Ok(removed)
    }
}
