//! The config a launch reads, level by level: box (`project.yaml`), workset
//! (`$DATA/config.yaml` for default-mode boxes), crab (`crabs/<id>.yaml`) and system
//! (`kanibako.yaml`), most specific first. An explicitly empty value stops the search
//! (it means "none", not "fall through").

use std::collections::BTreeMap;

use anyhow::Result;
use serde_yaml::Value;

use crate::boxes::DEFAULT_IMAGE;
use crate::document::Document;

pub struct Levels {
    pub boxed: Document,
    pub workset: Option<Document>,
    pub crab: Option<Document>,
    pub system: Document,
}

impl Levels {
    /// Box, workset, system: the levels of `box.*` and `shared:`.
    fn config_levels(&self) -> impl Iterator<Item = &Document> {
        std::iter::once(&self.boxed)
            .chain(self.workset.iter())
            .chain(std::iter::once(&self.system))
    }

    fn first_str(&self, keys: &[&str]) -> Result<Option<String>> {
        for doc in self.config_levels() {
            if let Some(v) = doc.get_str(keys)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// The rig: the first level that names one, else the built-in default.
    pub fn image(&self) -> Result<String> {
        Ok(self
            .first_str(&["box", "image"])?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_IMAGE.to_owned()))
    }

    /// `box.crab`: which agent runs (`None` = whichever is installed).
    pub fn crab_id(&self) -> Result<Option<String>> {
        Ok(self.first_str(&["box", "crab"])?.filter(|s| !s.is_empty()))
    }

    /// A crab state key (`model`, …): box, workset, crab file, system, then `default`.
    /// `Some("")` when a level set it empty on purpose.
    pub fn crab_state(&self, key: &str, default: Option<&str>) -> Result<Option<String>> {
        let levels = std::iter::once(&self.boxed)
            .chain(self.workset.iter())
            .chain(self.crab.iter())
            .chain(std::iter::once(&self.system));
        for doc in levels {
            if let Some(v) = doc.get_str(&["crab", key])? {
                return Ok(Some(v));
            }
        }
        Ok(default.map(str::to_owned))
    }

    /// The crab's `run_args` list.
    pub fn run_args(&self) -> Result<Vec<String>> {
        let Some(crab) = &self.crab else {
            return Ok(Vec::new());
        };
        Ok(match crab.get(&["crab", "run_args"])? {
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Bool(b) => Some(b.to_string()),
                    _ => None,
                })
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        })
    }

    /// The crab file's `env:` map.
    pub fn crab_env(&self) -> Result<BTreeMap<String, String>> {
        match &self.crab {
            Some(c) => Ok(c.get_string_map(&["env"])?.into_iter().collect()),
            None => Ok(BTreeMap::new()),
        }
    }

    /// The crab file's `shared:` caches.
    pub fn crab_shared(&self) -> Result<Vec<(String, String)>> {
        match &self.crab {
            Some(c) => Ok(c.get_string_map(&["shared"])?),
            None => Ok(Vec::new()),
        }
    }

    /// Global shared caches: the most specific non-empty `shared:` map, whole.
    pub fn shared(&self) -> Result<Vec<(String, String)>> {
        for doc in self.config_levels() {
            let map = doc.get_string_map(&["shared"])?;
            if !map.is_empty() {
                return Ok(map);
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn doc(text: &str) -> Document {
        Document::parse(Path::new("x.yaml"), text).unwrap()
    }

    fn levels(b: &str, w: &str, c: &str, s: &str) -> Levels {
        Levels {
            boxed: doc(b),
            workset: Some(doc(w)),
            crab: Some(doc(c)),
            system: doc(s),
        }
    }

    #[test]
    fn model_precedence_and_suppression() {
        let l = levels("", "", "crab:\n  model: haiku\n", "crab:\n  model: sys\n");
        assert_eq!(
            l.crab_state("model", Some("opus")).unwrap().as_deref(),
            Some("haiku")
        );
        let l = levels("crab:\n  model: ''\n", "", "crab:\n  model: haiku\n", "");
        assert_eq!(
            l.crab_state("model", Some("opus")).unwrap().as_deref(),
            Some("")
        );
        let l = levels("", "crab:\n  model: ws\n", "", "");
        assert_eq!(
            l.crab_state("model", Some("opus")).unwrap().as_deref(),
            Some("ws")
        );
        let l = levels("", "", "", "");
        assert_eq!(
            l.crab_state("model", Some("opus")).unwrap().as_deref(),
            Some("opus")
        );
    }

    #[test]
    fn image_and_shared() {
        let l = levels(
            "",
            "box:\n  image: ws\n",
            "",
            "box:\n  image: sys\nshared:\n  pip: .cache/pip\n",
        );
        assert_eq!(l.image().unwrap(), "ws");
        assert_eq!(
            l.shared().unwrap(),
            vec![("pip".to_owned(), ".cache/pip".to_owned())]
        );
        let l = levels("", "", "", "");
        assert_eq!(l.image().unwrap(), DEFAULT_IMAGE);
    }

    #[test]
    fn run_args_accept_a_list() {
        let l = levels("", "", "crab:\n  run_args: [--verbose, -x]\n", "");
        assert_eq!(l.run_args().unwrap(), ["--verbose", "-x"]);
    }
}
