//! `$DATA/rigs.yaml`: rigs added, extended, imported or built on the host, by name.
//! Unknown fields and records survive a rewrite.

use std::path::Path;

use serde_yaml::{Mapping, Value};

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

fn record(v: &Value) -> Option<Record> {
    let m = v.as_mapping()?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = match s("kind").as_deref() {
        Some("extended") => Kind::Extended,
        Some("template") => Kind::Template,
        _ => Kind::Prefab,
    };
    Some(Record {
        kind,
        source: s("source"),
        source_type: s("source_type"),
        image: s("image"),
    })
}

impl Rigs {
    pub fn load(path: &Path) -> Result<Self, DocError> {
        Self::from_doc(Document::load(path)?)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, DocError> {
        Self::from_doc(Document::parse(path, text)?)
    }

    fn from_doc(doc: Document) -> Result<Self, DocError> {
        let records = match doc.get(&["rigs"])? {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), record(v)?)))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self { doc, records })
    }

    pub fn get(&self, name: &str) -> Option<&Record> {
        self.records.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Add or replace a record, keeping the fields of an existing one it does not set.
    pub fn upsert(&mut self, name: &str, rec: &Record) -> Result<(), DocError> {
        let mut m = match self.doc.get(&["rigs", name])? {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        m.insert("kind".into(), rec.kind.as_str().into());
        for (k, v) in [
            ("source", &rec.source),
            ("source_type", &rec.source_type),
            ("image", &rec.image),
        ] {
            match v {
                Some(v) => m.insert(k.into(), v.clone().into()),
                None => m.remove(k),
            };
        }
        self.doc.set(&["rigs", name], Value::Mapping(m))?;
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
