//! What a node offers its executions (`skrei node --resources`) and what
//! each bid and execution holds of it (R-PLC-1).
//!
//! A node's offer is a [`Resources`] (the type a task asks with): a kind
//! left unset is not checked. Each open bid and running execution holds
//! what its task asks for, until the bid closes or the execution ends. A
//! task that leaves memory unset holds [`DEFAULT_TASK_MEMORY`], the limit
//! the executors give it; one that leaves CPU unset holds none (it shares
//! the cores; the node's capacity, a count of executions, still caps
//! those). [`Held::fit`] decides whether one more task fits, and says why
//! not: more than the node offers at all (lasting) or more than is free now
//! (it may fit later).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::job::{ByteSize, MilliCpu, Resources};

/// The memory a task that does not say gets: the executors' limit, and
/// what such a task holds of a node's offer.
pub const DEFAULT_TASK_MEMORY: u64 = 512 << 20;

/// What a task holds of `kind`: what it asks, or the default.
fn holds(kind: ResourceKind, task: &Resources) -> u64 {
    match (kind.of(task), kind) {
        (Some(asked), _) => asked,
        (None, ResourceKind::Memory) => DEFAULT_TASK_MEMORY,
        (None, _) => 0,
    }
}

/// A kind of resource a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// CPU, in millicores.
    Cpu,
    /// Memory, in bytes.
    Memory,
    /// Disk (the bytes an execution's inputs and results may take).
    Disk,
}

impl ResourceKind {
    /// All kinds, in the order they are checked.
    pub const ALL: [ResourceKind; 3] =
        [ResourceKind::Cpu, ResourceKind::Memory, ResourceKind::Disk];

    /// `amount` of this kind as a user writes it: `2` or `1500m` cores,
    /// `8Gi`, `7.8Gi` (sizes that are not a whole unit are rounded down to
    /// a tenth).
    pub fn show(self, amount: u64) -> String {
        match self {
            ResourceKind::Cpu => MilliCpu(amount).to_string(),
            ResourceKind::Memory | ResourceKind::Disk => approx_size(amount),
        }
    }

    /// How much of this kind `resources` names (`None`: unset).
    pub fn of(self, resources: &Resources) -> Option<u64> {
        match self {
            ResourceKind::Cpu => resources.cpu.map(|c| c.0),
            ResourceKind::Memory => resources.memory.map(|m| m.0),
            ResourceKind::Disk => resources.disk.map(|d| d.0),
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Cpu => "cpu",
            ResourceKind::Memory => "memory",
            ResourceKind::Disk => "disk",
        })
    }
}

/// `8Gi` for a whole number of a unit, else one decimal of the largest
/// binary unit it reaches (`7.8Gi`), else bytes.
fn approx_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("Pi", 1 << 50),
        ("Ti", 1 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ];
    for (unit, size) in UNITS {
        if bytes >= size {
            if bytes.is_multiple_of(size) {
                return format!("{}{unit}", bytes / size);
            }
            let tenths = (u128::from(bytes) * 10 / u128::from(size)) as u64;
            return format!("{}.{}{unit}", tenths / 10, tenths % 10);
        }
    }
    ByteSize(bytes).to_string()
}

/// What a node offers, as its node info gossips it: the fields of
/// [`Resources`], but a kind a newer version adds is ignored instead of
/// making the whole node info unreadable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    #[serde(rename = "CPU", default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<MilliCpu>,
    #[serde(rename = "Memory", default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(rename = "Disk", default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
}

impl Offer {
    /// Nothing offered is checked (an older node, or one with no limits).
    pub fn is_empty(&self) -> bool {
        *self == Offer::default()
    }
}

impl From<Resources> for Offer {
    fn from(r: Resources) -> Offer {
        Offer {
            cpu: r.cpu,
            memory: r.memory,
            disk: r.disk,
        }
    }
}

impl From<Offer> for Resources {
    fn from(o: Offer) -> Resources {
        Resources {
            cpu: o.cpu,
            memory: o.memory,
            disk: o.disk,
        }
    }
}

/// Why `--resources` did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    #[error("`{0}` is not KIND=AMOUNT: write e.g. `cpu=4,memory=8Gi,disk=100Gi`")]
    Syntax(String),
    #[error("`{0}` is not a resource: the kinds are cpu, memory and disk")]
    Kind(String),
    #[error("{0} is given twice")]
    Twice(ResourceKind),
    #[error("{kind}: {error}")]
    Amount {
        kind: ResourceKind,
        error: crate::job::quantity::QuantityError,
    },
}

/// Parses `cpu=4,memory=8Gi,disk=100Gi` (any of the three, any order):
/// what `skrei node --resources` takes. Kinds left out are `None`.
pub fn parse_offer(text: &str) -> Result<Resources, OfferError> {
    let mut offer = Resources::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, amount) = part
            .split_once('=')
            .ok_or_else(|| OfferError::Syntax(part.to_string()))?;
        let kind = match kind.trim().to_ascii_lowercase().as_str() {
            "cpu" => ResourceKind::Cpu,
            "memory" | "mem" => ResourceKind::Memory,
            "disk" => ResourceKind::Disk,
            _ => return Err(OfferError::Kind(kind.trim().to_string())),
        };
        if kind.of(&offer).is_some() {
            return Err(OfferError::Twice(kind));
        }
        let amount = amount.trim();
        let bad = |error| OfferError::Amount { kind, error };
        match kind {
            ResourceKind::Cpu => offer.cpu = Some(amount.parse().map_err(bad)?),
            ResourceKind::Memory => offer.memory = Some(amount.parse().map_err(bad)?),
            ResourceKind::Disk => offer.disk = Some(amount.parse().map_err(bad)?),
        }
    }
    if offer == Resources::default() {
        return Err(OfferError::Syntax(text.to_string()));
    }
    Ok(offer)
}

/// Why a task does not fit a node ([`Held::fit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Misfit {
    /// It asks for more than the node offers at all: it never fits here.
    TooLarge {
        resource: ResourceKind,
        requested: u64,
        offered: u64,
    },
    /// The node offers enough, but bids and executions hold the rest now.
    Busy {
        resource: ResourceKind,
        requested: u64,
        free: u64,
    },
}

/// What open bids and running executions hold of a node's resources, by
/// kind (in [`ResourceKind::ALL`] order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Held([u64; 3]);

impl Held {
    /// How much of `kind` is held.
    pub fn get(&self, kind: ResourceKind) -> u64 {
        self.0[kind as usize]
    }

    /// What is free of `offer` beside what is held (kinds `offer` leaves
    /// unset stay unset).
    pub fn free(&self, offer: &Resources) -> Resources {
        let free = |kind: ResourceKind| {
            kind.of(offer)
                .map(|offered| offered.saturating_sub(self.get(kind)))
        };
        Resources {
            cpu: free(ResourceKind::Cpu).map(MilliCpu),
            memory: free(ResourceKind::Memory).map(ByteSize),
            disk: free(ResourceKind::Disk).map(ByteSize),
        }
    }

    /// A bid or execution of a task asking `task` starts holding it.
    pub fn take(&mut self, task: &Resources) {
        for kind in ResourceKind::ALL {
            let slot = &mut self.0[kind as usize];
            *slot = slot.saturating_add(holds(kind, task));
        }
    }

    /// A bid or execution of a task asking `task` lets go of it.
    pub fn give_back(&mut self, task: &Resources) {
        for kind in ResourceKind::ALL {
            let slot = &mut self.0[kind as usize];
            *slot = slot.saturating_sub(holds(kind, task));
        }
    }

    /// Whether a task asking `task` fits beside what is held, on a node
    /// offering `offer`. Every kind is checked for a lasting misfit before
    /// any for a passing one, so a node that could never run the task says
    /// so even while it is busy.
    pub fn fit(&self, offer: &Resources, task: &Resources) -> Result<(), Misfit> {
        let asked = |kind: ResourceKind| Some((holds(kind, task), kind.of(offer)?));
        for kind in ResourceKind::ALL {
            if let Some((requested, offered)) = asked(kind)
                && requested > offered
            {
                return Err(Misfit::TooLarge {
                    resource: kind,
                    requested,
                    offered,
                });
            }
        }
        for kind in ResourceKind::ALL {
            if let Some((requested, offered)) = asked(kind) {
                let free = offered.saturating_sub(self.get(kind));
                if requested > free {
                    return Err(Misfit::Busy {
                        resource: kind,
                        requested,
                        free,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: Option<u64>, memory: Option<u64>, disk: Option<u64>) -> Resources {
        Resources {
            cpu: cpu.map(MilliCpu),
            memory: memory.map(ByteSize),
            disk: disk.map(ByteSize),
        }
    }

    const GI: u64 = 1 << 30;

    #[test]
    fn r_plc_1_a_task_larger_than_the_offer_never_fits() {
        let offer = res(Some(2000), Some(8 * GI), None);
        let held = Held::default();
        assert_eq!(
            held.fit(&offer, &res(None, Some(100 * GI), None)),
            Err(Misfit::TooLarge {
                resource: ResourceKind::Memory,
                requested: 100 * GI,
                offered: 8 * GI
            })
        );
        // Unset kinds of the offer are not checked; a task that asks no
        // memory holds the executors' default.
        assert_eq!(held.fit(&offer, &res(None, None, Some(1 << 50))), Ok(()));
        assert_eq!(held.fit(&offer, &Resources::default()), Ok(()));
        let tiny = res(None, Some(DEFAULT_TASK_MEMORY - 1), None);
        assert_eq!(
            held.fit(&tiny, &Resources::default()),
            Err(Misfit::TooLarge {
                resource: ResourceKind::Memory,
                requested: DEFAULT_TASK_MEMORY,
                offered: DEFAULT_TASK_MEMORY - 1
            })
        );
        let mut one = Held::default();
        one.take(&Resources::default());
        assert_eq!(one.get(ResourceKind::Memory), DEFAULT_TASK_MEMORY);
        assert_eq!(one.get(ResourceKind::Cpu), 0);
    }

    #[test]
    fn r_plc_1_what_bids_and_executions_hold_is_not_free() {
        let offer = res(Some(2000), Some(8 * GI), None);
        let mut held = Held::default();
        let task = res(Some(1500), Some(2 * GI), None);
        assert_eq!(held.fit(&offer, &task), Ok(()));
        held.take(&task);
        assert_eq!(
            held.fit(&offer, &task),
            Err(Misfit::Busy {
                resource: ResourceKind::Cpu,
                requested: 1500,
                free: 500
            })
        );
        // A lasting misfit is named even while busy.
        assert!(matches!(
            held.fit(&offer, &res(Some(100), Some(9 * GI), None)),
            Err(Misfit::TooLarge {
                resource: ResourceKind::Memory,
                ..
            })
        ));
        held.give_back(&task);
        assert_eq!(held, Held::default());
        assert_eq!(held.fit(&offer, &task), Ok(()));
    }

    #[test]
    fn offers_parse_as_operators_write_them() {
        assert_eq!(
            parse_offer("cpu=2, memory=8Gi,disk=100Gi"),
            Ok(res(Some(2000), Some(8 * GI), Some(100 * GI)))
        );
        assert_eq!(
            parse_offer("memory=512Mi"),
            Ok(res(None, Some(512 << 20), None))
        );
        assert_eq!(parse_offer("cpu=500m"), Ok(res(Some(500), None, None)));
        for bad in [
            "",
            "cpu",
            "gpu=1",
            "cpu=1,cpu=2",
            "memory=lots",
            "cpu=0",
            ",",
        ] {
            let err = parse_offer(bad).expect_err(bad).to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(
            parse_offer("gpu=1")
                .unwrap_err()
                .to_string()
                .contains("cpu, memory and disk")
        );
    }

    #[test]
    fn amounts_read_as_users_write_them() {
        assert_eq!(ResourceKind::Memory.show(8 * GI), "8Gi");
        assert_eq!(ResourceKind::Memory.show(8 * GI - 200 * (1 << 20)), "7.8Gi");
        assert_eq!(ResourceKind::Disk.show(512), "512");
        assert_eq!(ResourceKind::Cpu.show(1500), "1500m");
        assert_eq!(ResourceKind::Cpu.show(2000), "2");
    }
}
