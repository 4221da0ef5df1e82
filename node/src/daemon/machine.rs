//! What this machine can offer jobs by default (`skrei node --resources`
//! fills in the kinds it leaves out from here; R-PLC-1).

use protocol::job::{ByteSize, MilliCpu, Resources};

/// CPU kept for the node itself: a tenth of a core per core, at most half
/// a core.
fn cpu_reserve(millis: u64) -> u64 {
    (millis / 10).min(500)
}

/// Memory kept for the node itself: a tenth, at least 256 MiB.
fn memory_reserve(bytes: u64) -> u64 {
    (bytes / 10).max(256 << 20)
}

/// `offer` with its CPU and memory, where unset, taken from the machine
/// less a reserve for the node (its cores as the process may use them,
/// cgroup quotas and affinity included; its RAM). Disk stays as given.
pub(crate) fn offer(offer: Resources) -> Resources {
    let cpu = offer.cpu.or_else(|| {
        let cores = std::thread::available_parallelism().ok()?.get() as u64;
        let millis = cores * 1000;
        Some(MilliCpu(millis - cpu_reserve(millis)))
    });
    let memory = offer.memory.or_else(|| {
        let total = nix::sys::sysinfo::sysinfo().ok()?.ram_total();
        Some(ByteSize(total.checked_sub(memory_reserve(total))?.max(1)))
    });
    Resources {
        cpu,
        memory,
        disk: offer.disk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_plc_1_the_default_offer_is_the_machine_less_a_reserve() {
        let offer = offer(Resources::default());
        let cores = std::thread::available_parallelism().unwrap().get() as u64;
        let cpu = offer.cpu.unwrap().0;
        assert!(cpu < cores * 1000 && cpu >= cores * 1000 - 500, "{cpu}");
        let total = nix::sys::sysinfo::sysinfo().unwrap().ram_total();
        let memory = offer.memory.unwrap().0;
        assert!(
            memory < total && memory >= total / 10 * 8,
            "{memory} of {total}"
        );
        assert_eq!(offer.disk, None);
        // What the operator gives is kept.
        let given = Resources {
            cpu: Some(MilliCpu(250)),
            memory: Some(ByteSize(1 << 30)),
            disk: Some(ByteSize(1 << 40)),
        };
        assert_eq!(super::offer(given), given);
    }
}
