//! The names the usage history counts under: model ids, client key ids and deployments
//! (`upstream/deployment`), each interned once as a small id so that a bucket holds numbers,
//! not strings. Id 0 of each dimension is "none" (the empty name). Looking up a known name never
//! allocates. Only names the config defines reach here (a client cannot add any), and each
//! dimension holds at most `MAX_NAMES`; beyond that new names count as "none".

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt as _};

/// The most names one dimension interns.
pub const MAX_NAMES: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Model = 0,
    Key = 1,
    Deployment = 2,
}

impl Dimension {
    pub const ALL: [Dimension; 3] = [Dimension::Model, Dimension::Key, Dimension::Deployment];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One dimension's names, in id order.
#[derive(Debug, Clone)]
pub struct NameTable {
    names: Vec<Arc<str>>,
    ids: HashMap<Arc<str>, u32>,
}

impl Default for NameTable {
    fn default() -> Self {
        let none: Arc<str> = Arc::from("");
        let mut ids = HashMap::new();
        ids.insert(none.clone(), 0);
        NameTable {
            ids,
            names: vec![none],
        }
    }
}

impl NameTable {
    pub fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        if self.names.len() >= MAX_NAMES {
            return 0;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = Arc::from(name);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    pub fn find(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }
}

/// The three dimensions, with the deployment ids also found by (upstream, deployment) without
/// building their joined name.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub tables: [NameTable; 3],
    deployments: HashMap<Box<str>, HashMap<Box<str>, u32>>,
}

impl Names {
    pub fn model(&mut self, model: Option<&str>) -> u32 {
        model.map_or(0, |m| self.tables[0].id(m))
    }

    pub fn key(&mut self, key: Option<&str>) -> u32 {
        key.map_or(0, |k| self.tables[1].id(k))
    }

    pub fn deployment(&mut self, upstream: Option<&str>, deployment: Option<&str>) -> u32 {
        let (Some(upstream), Some(deployment)) = (upstream, deployment) else {
            return 0;
        };
        if let Some(id) = self
            .deployments
            .get(upstream)
            .and_then(|by_name| by_name.get(deployment))
        {
            return *id;
        }
        let id = self.tables[2].id(&format!("{upstream}/{deployment}"));
        if id != 0 {
            self.deployments
                .entry(upstream.into())
                .or_default()
                .insert(deployment.into(), id);
        }
        id
    }

    /// Interns a name read back from a file.
    pub fn intern(&mut self, dimension: Dimension, name: &str) -> u32 {
        self.tables[dimension.index()].id(name)
    }

    pub fn table(&self, dimension: Dimension) -> &NameTable {
        &self.tables[dimension.index()]
    }

    pub fn len(&self) -> [usize; 3] {
        [
            self.tables[0].names.len(),
            self.tables[1].names.len(),
            self.tables[2].names.len(),
        ]
    }

    /// The names added since the tables had `since` entries (the tables only grow).
    pub fn added_since(&self, since: [usize; 3]) -> [Vec<Arc<str>>; 3] {
        std::array::from_fn(|d| {
            self.tables[d].names[since[d].min(self.tables[d].names.len())..].to_vec()
        })
    }

    /// Appends names another copy of these tables added (see `added_since`).
    pub fn extend(&mut self, added: [Vec<Arc<str>>; 3]) {
        for (table, names) in self.tables.iter_mut().zip(added) {
            for name in names {
                table.id(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_stable_ids_and_none_is_zero() {
        let mut names = Names::default();
        assert_eq!(names.model(None), 0);
        assert_eq!(names.model(Some("gpt-4o")), 1);
        assert_eq!(names.model(Some("o3")), 2);
        assert_eq!(names.model(Some("gpt-4o")), 1);
        assert_eq!(names.key(Some("team-a")), 1);
        assert_eq!(names.deployment(Some("east"), Some("dep/1")), 1);
        assert_eq!(names.deployment(Some("east"), Some("dep/1")), 1);
        assert_eq!(names.deployment(Some("east"), None), 0);
        assert_eq!(
            &*names.table(Dimension::Deployment).names()[1],
            "east/dep/1"
        );
        assert_eq!(names.table(Dimension::Model).find("o3"), Some(2));
        assert_eq!(names.table(Dimension::Model).find("nope"), None);
    }

    #[test]
    fn a_copy_catches_up_with_the_names_added_since() {
        let mut names = Names::default();
        names.model(Some("a"));
        let mut copy = names.clone();
        let since = names.len();
        names.model(Some("b"));
        names.deployment(Some("u"), Some("d"));
        copy.extend(names.added_since(since));
        assert_eq!(copy.table(Dimension::Model).find("b"), Some(2));
        assert_eq!(copy.table(Dimension::Deployment).find("u/d"), Some(1));
    }
}
