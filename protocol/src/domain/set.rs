//! [`DomainSet`]: a job's or a node's list of entries, minimised and sorted,
//! and THE matching rule, [`DomainSet::allows`].

use std::collections::HashSet;

use super::entry::{Domain, Kind};
use super::error::DomainError;
use super::grammar::{Host, is_normal_name};

/// A set of entries, minimised and sorted: no duplicates, no entry covered by
/// another, in the byte order of the normalised text.
///
/// Two sets that allow the same hosts through the same entries are equal,
/// whatever order and redundancy they were written with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DomainSet(Vec<Domain>);

/// An entry of a list that failed to parse, with its position in the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index}: {error}")]
pub struct DomainSetError {
    /// Position in the list, counting from 0 like the list in a job file.
    pub index: usize,
    /// The entry as written.
    pub input: String,
    /// Why it was rejected.
    pub error: DomainError,
}

impl DomainSet {
    /// Parse, normalise and minimise a list of entries, reporting every bad
    /// entry rather than the first.
    pub fn parse<I, S>(entries: I) -> Result<DomainSet, Vec<DomainSetError>>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut domains = Vec::new();
        let mut errors = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let input = entry.as_ref();
            match Domain::parse(input) {
                Ok(d) => domains.push(d),
                Err(error) => errors.push(DomainSetError {
                    index,
                    input: input.to_owned(),
                    error,
                }),
            }
        }
        if errors.is_empty() {
            Ok(DomainSet::from_domains(domains))
        } else {
            Err(errors)
        }
    }

    /// Minimise and sort already parsed entries.
    pub fn from_domains(domains: impl IntoIterator<Item = Domain>) -> DomainSet {
        let mut all: Vec<Domain> = domains.into_iter().collect();
        all.sort();
        all.dedup();
        let subtrees: HashSet<&str> = all
            .iter()
            .filter(|d| d.includes_subdomains())
            .map(Domain::name_part)
            .collect();
        // An entry goes if some *other* entry covers it. Only leading-dot
        // entries cover others, so walking the entry's suffixes finds them
        // in O(labels) instead of comparing every pair.
        let covered_by_other = |d: &Domain| match d.kind {
            Kind::Ip(_) => false,
            Kind::Exact => suffixes(&d.text).any(|s| subtrees.contains(s)),
            Kind::Subtree => suffixes(d.name_part())
                .skip(1)
                .any(|s| subtrees.contains(s)),
        };
        let kept = all
            .iter()
            .filter(|d| !covered_by_other(d))
            .cloned()
            .collect();
        DomainSet(kept)
    }

    /// Whether `host` is allowed by this set (R-NET-4).
    ///
    /// THE matching rule: the acceptance policy, the egress proxy and the
    /// WASM executor all call this, so they cannot disagree.
    pub fn allows(&self, host: &Host) -> bool {
        match host {
            Host::Ip(ip) => self.has(&ip.to_canonical().to_string()),
            Host::Name(n) => is_normal_name(n) && (self.has(n) || self.has_subtree_over(n)),
        }
    }

    /// Whether some entry of this set covers `entry` (see [`Domain::covers`]).
    pub fn covers(&self, entry: &Domain) -> bool {
        match entry.kind {
            Kind::Ip(_) => self.has(&entry.text),
            Kind::Exact => self.has(&entry.text) || self.has_subtree_over(&entry.text),
            Kind::Subtree => self.has_subtree_over(entry.name_part()),
        }
    }

    /// The entries of `job` that no entry of this set covers, in `job`'s
    /// order: empty when a node with this allowlist may take the job (R-POL-2).
    pub fn uncovered<'a>(&self, job: &'a DomainSet) -> Vec<&'a Domain> {
        job.0.iter().filter(|d| !self.covers(d)).collect()
    }

    /// The entries, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Domain> {
        self.0.iter()
    }

    /// The number of entries after minimisation.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set has no entry (and so allows no host).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An entry with exactly this text is in the set.
    fn has(&self, text: &str) -> bool {
        self.0
            .binary_search_by(|d| d.text.as_str().cmp(text))
            .is_ok()
    }

    /// A leading-dot entry `.S` is in the set for `name` or one of its
    /// parent domains `S`.
    fn has_subtree_over(&self, name: &str) -> bool {
        suffixes(name).any(|s| {
            // Compare with `.{s}` without building it.
            let dotted = || std::iter::once(&b'.').chain(s.as_bytes());
            self.0
                .binary_search_by(|d| d.text.as_bytes().iter().cmp(dotted()))
                .is_ok()
        })
    }
}

/// `a.b.c`, `b.c`, `c`: a name and its parents, on label boundaries.
fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |s| s.split_once('.').map(|(_, rest)| rest))
}

impl FromIterator<Domain> for DomainSet {
    fn from_iter<I: IntoIterator<Item = Domain>>(iter: I) -> Self {
        DomainSet::from_domains(iter)
    }
}

impl<'a> IntoIterator for &'a DomainSet {
    type Item = &'a Domain;
    type IntoIter = std::slice::Iter<'a, Domain>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl serde::Serialize for DomainSet {
    /// A list of normalised strings.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for DomainSet {
    /// Through [`DomainSet::parse`]: normalised and minimised, with every bad
    /// entry reported.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(d)?;
        DomainSet::parse(&entries).map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            serde::de::Error::custom(all.join("; "))
        })
    }
}
