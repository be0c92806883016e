//! A metric family that remembers its label sets, so that the series of a
//! target removed by a config reload can be removed too, and one target's
//! series shown alone (prometheus-client's `Family` can remove a label set
//! but cannot list them).

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};

use crate::metrics::exposition::{Scope, Scoped};
use crate::metrics::labels::OfTarget;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Metric;

/// A [`Family`] plus the set of label sets it holds.
#[derive(Debug)]
pub struct Tracked<L, M, C = fn() -> M> {
    family: Family<L, M, C>,
    keys: Arc<Mutex<HashSet<L>>>,
}

impl<L, M, C: Clone> Clone for Tracked<L, M, C> {
    fn clone(&self) -> Self {
        Tracked {
            family: self.family.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl<L: Clone + Hash + Eq, M: Default> Default for Tracked<L, M, fn() -> M> {
    fn default() -> Self {
        Tracked {
            family: Family::new_with_constructor(M::default),
            keys: Arc::default(),
        }
    }
}

impl<L: Clone + Hash + Eq, M, C: MetricConstructor<M>> Tracked<L, M, C> {
    /// An empty family whose series `constructor` makes (a histogram's buckets).
    pub fn with_constructor(constructor: C) -> Self {
        Tracked {
            family: Family::new_with_constructor(constructor),
            keys: Arc::default(),
        }
    }

    fn note(&self, l: &L) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        if !keys.contains(l) {
            keys.insert(l.clone());
        }
    }

    /// The series of `l`, created if absent (see [`Family::get_or_create`]).
    /// Only a creation takes the lock of the label-set list.
    pub fn get_or_create(&self, l: &L) -> impl std::ops::Deref<Target = M> + '_ {
        if let Some(existing) = self.family.get(l) {
            return existing;
        }
        self.note(l);
        self.family.get_or_create(l)
    }

    /// The series of `l`, created if absent, as an owned handle.
    pub fn get_or_create_owned(&self, l: &L) -> M
    where
        M: Clone,
    {
        self.note(l);
        self.family.get_or_create_owned(l)
    }

    /// The series of `l`, if it exists (a handle sharing its value).
    pub fn get(&self, l: &L) -> Option<M>
    where
        M: Clone,
    {
        self.family.get(l).map(|m| m.clone())
    }

    /// The label sets it holds.
    pub fn keys(&self) -> Vec<L> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.iter().cloned().collect()
    }

    /// Removes every series whose labels `keep` rejects.
    pub fn retain(&self, keep: impl Fn(&L) -> bool) {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.retain(|l| {
            let k = keep(l);
            if !k {
                self.family.remove(l);
            }
            k
        });
    }
}

impl<L, M: TypedMetric, C> TypedMetric for Tracked<L, M, C> {
    const TYPE: MetricType = M::TYPE;
}

impl<L, M, C> EncodeMetric for Tracked<L, M, C>
where
    L: Clone + Hash + Eq + EncodeLabelSet,
    M: EncodeMetric + TypedMetric,
    C: MetricConstructor<M>,
    Family<L, M, C>: Metric,
{
    fn encode(&self, encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        self.family.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }

    fn is_empty(&self) -> bool {
        self.family.is_empty()
    }
}

impl<L, M, C> Scoped for Tracked<L, M, C>
where
    L: Clone + Hash + Eq + EncodeLabelSet + OfTarget + Send + Sync + std::fmt::Debug + 'static,
    M: EncodeMetric + TypedMetric + Send + Sync + std::fmt::Debug + 'static,
    C: MetricConstructor<M> + Send + Sync + std::fmt::Debug + 'static,
    Family<L, M, C>: Metric,
{
    fn encode_in(&self, mut encoder: MetricEncoder, scope: &Scope) -> Result<(), std::fmt::Error> {
        let Some(target) = &scope.only else {
            return self.family.encode(encoder);
        };
        for l in self.keys().iter().filter(|l| l.of_target(target)) {
            if let Some(m) = self.family.get(l) {
                m.encode(encoder.encode_family(l)?)?;
            }
        }
        Ok(())
    }

    fn is_empty_in(&self, scope: &Scope) -> bool {
        match &scope.only {
            None => self.family.is_empty(),
            Some(target) => {
                let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                !keys.iter().any(|l| l.of_target(target))
            }
        }
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}
