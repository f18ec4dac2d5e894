//! Reservations of the provider's inventory: each open bid and each lease holds the CPU,
//! memory, storage and exact GPU devices it was offered, so concurrent orders can never be
//! promised more than the machine has. A hold is keyed by the order it serves (and, once won, by
//! the order of its lease).

use std::collections::BTreeMap;

use gridlease_types::{GpuOffer, GpuSpec, OrderId};
use serde::{Deserialize, Serialize};

use crate::inventory::GpuDevice;

/// What the provider has to offer in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub gpus: Vec<GpuDevice>,
}

/// One resource unit of an order: `count` replicas of these resources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitRequest {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub count: u32,
    /// GPUs per replica.
    pub gpu_units: u32,
    /// Acceptable GPUs (any GPU when empty).
    pub gpu_options: Vec<GpuSpec>,
}

/// What one resource unit got: the GPU model offered and the devices behind it
/// (`gpu_units` per replica, replica after replica).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAllocation {
    pub gpu: Option<GpuOffer>,
    pub gpu_devices: Vec<u32>,
}

/// A hold on the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    pub units: Vec<UnitAllocation>,
}

impl Hold {
    /// The GPU devices of replica `replica` of resource unit `unit` (0-based).
    pub fn replica_gpus(&self, unit: usize, replica: u32, per_replica: u32) -> Vec<u32> {
        let Some(u) = self.units.get(unit) else { return Vec::new() };
        let start = replica as usize * per_replica as usize;
        u.gpu_devices.iter().skip(start).take(per_replica as usize).copied().collect()
    }
}

/// Why a request cannot be held.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Shortfall {
    #[error("needs {need}m cpu, {free}m free")]
    Cpu { need: u64, free: u64 },
    #[error("needs {need} bytes of memory, {free} free")]
    Memory { need: u64, free: u64 },
    #[error("needs {need} bytes of storage, {free} free")]
    Storage { need: u64, free: u64 },
    #[error("resource unit {unit} needs {need} GPUs of an accepted model, {free} free")]
    Gpu { unit: usize, need: u64, free: u64 },
    #[error("the request overflows")]
    Overflow,
    #[error("order {0} already holds resources")]
    AlreadyHeld(OrderId),
}

/// The books do not balance (see [`Reservations::check`]): what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the reservations do not balance: {0}")]
pub struct Unbalanced(pub String);

/// Free resources right now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Free {
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub storage_bytes: u64,
    /// Free GPUs by model.
    pub gpus: BTreeMap<String, u32>,
}

/// The inventory with its holds. Every change takes `&mut self`: two decisions cannot
/// interleave inside one, whatever lock the owner keeps it under, so the books are checked by
/// sequences of operations (`random_sequences_never_over_allocate`), not by threads.
#[derive(Clone, Debug)]
pub struct Reservations {
    capacity: Capacity,
    holds: BTreeMap<OrderId, Hold>,
    used_cpu: u64,
    used_memory: u64,
    used_storage: u64,
    /// Per GPU device (by position in `capacity.gpus`): the order holding it.
    gpu_holder: Vec<Option<OrderId>>,
}

fn total(units: &[UnitRequest], f: impl Fn(&UnitRequest) -> u64) -> Option<u64> {
    units.iter().try_fold(0u64, |acc, u| f(u).checked_mul(u64::from(u.count))?.checked_add(acc))
}

impl Reservations {
    pub fn new(capacity: Capacity) -> Reservations {
        let n = capacity.gpus.len();
        Reservations {
            capacity,
            holds: BTreeMap::new(),
            used_cpu: 0,
            used_memory: 0,
            used_storage: 0,
            gpu_holder: vec![None; n],
        }
    }

    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    pub fn get(&self, key: &OrderId) -> Option<&Hold> {
        self.holds.get(key)
    }

    pub fn holds(&self) -> impl Iterator<Item = (&OrderId, &Hold)> {
        self.holds.iter()
    }

    /// Holds resources for `units` under `key`. GPUs: for each unit, the accepted model with
    /// enough free devices that `rank` puts first (the cheapest to offer, say).
    pub fn reserve<R: Ord>(
        &mut self,
        key: &OrderId,
        units: &[UnitRequest],
        rank: impl Fn(&GpuDevice) -> R,
    ) -> Result<Hold, Shortfall> {
        if self.holds.contains_key(key) {
            return Err(Shortfall::AlreadyHeld(*key));
        }
        let cpu = total(units, |u| u.cpu_millis).ok_or(Shortfall::Overflow)?;
        let memory = total(units, |u| u.memory_bytes).ok_or(Shortfall::Overflow)?;
        let storage = total(units, |u| u.storage_bytes).ok_or(Shortfall::Overflow)?;
        let free_cpu = self.capacity.cpu_millis.saturating_sub(self.used_cpu);
        if cpu > free_cpu {
            return Err(Shortfall::Cpu { need: cpu, free: free_cpu });
        }
        let free_memory = self.capacity.memory_bytes.saturating_sub(self.used_memory);
        if memory > free_memory {
            return Err(Shortfall::Memory { need: memory, free: free_memory });
        }
        let free_storage = self.capacity.storage_bytes.saturating_sub(self.used_storage);
        if storage > free_storage {
            return Err(Shortfall::Storage { need: storage, free: free_storage });
        }
        // GPUs: pick devices unit by unit, tentatively, so two units cannot take the same one.
        let mut taken = vec![false; self.capacity.gpus.len()];
        let mut allocations = Vec::with_capacity(units.len());
        for (i, unit) in units.iter().enumerate() {
            let need = u64::from(unit.gpu_units) * u64::from(unit.count);
            if need == 0 {
                allocations.push(UnitAllocation { gpu: None, gpu_devices: Vec::new() });
                continue;
            }
            let free: Vec<usize> = (0..self.capacity.gpus.len())
                .filter(|&d| self.gpu_holder[d].is_none() && !taken[d])
                .filter(|&d| accepted(&unit.gpu_options, &self.capacity.gpus[d]))
                .collect();
            // Group the free accepted devices by model, and take the best-ranked model that
            // has enough of them.
            let mut by_model: BTreeMap<(String, String, String, String), Vec<usize>> =
                BTreeMap::new();
            for &d in &free {
                let g = &self.capacity.gpus[d];
                by_model
                    .entry((g.vendor.clone(), g.model.clone(), g.ram.clone(), g.interface.clone()))
                    .or_default()
                    .push(d);
            }
            let best = by_model
                .values()
                .filter(|devs| devs.len() as u64 >= need)
                .min_by_key(|devs| rank(&self.capacity.gpus[devs[0]]));
            let Some(devs) = best else {
                return Err(Shortfall::Gpu { unit: i + 1, need, free: free.len() as u64 });
            };
            let chosen: Vec<usize> = devs.iter().copied().take(need as usize).collect();
            for &d in &chosen {
                taken[d] = true;
            }
            let g = &self.capacity.gpus[chosen[0]];
            allocations.push(UnitAllocation {
                gpu: Some(GpuOffer {
                    units: unit.gpu_units,
                    vendor: g.vendor.clone(),
                    model: g.model.clone(),
                    ram: g.ram.clone(),
                    interface: g.interface.clone(),
                }),
                gpu_devices: chosen.iter().map(|&d| self.capacity.gpus[d].index).collect(),
            });
        }
        for (d, t) in taken.iter().enumerate() {
            if *t {
                self.gpu_holder[d] = Some(*key);
            }
        }
        self.used_cpu += cpu;
        self.used_memory += memory;
        self.used_storage += storage;
        let hold = Hold {
            cpu_millis: cpu,
            memory_bytes: memory,
            storage_bytes: storage,
            units: allocations,
        };
        self.holds.insert(*key, hold.clone());
        Ok(hold)
    }

    /// Puts back a hold that is known already (a restarted daemon re-adopting its leases).
    /// Fails, holding nothing, when it no longer fits.
    pub fn restore(&mut self, key: &OrderId, hold: Hold) -> Result<(), Shortfall> {
        if self.holds.contains_key(key) {
            return Err(Shortfall::AlreadyHeld(*key));
        }
        let free_cpu = self.capacity.cpu_millis.saturating_sub(self.used_cpu);
        if hold.cpu_millis > free_cpu {
            return Err(Shortfall::Cpu { need: hold.cpu_millis, free: free_cpu });
        }
        let free_memory = self.capacity.memory_bytes.saturating_sub(self.used_memory);
        if hold.memory_bytes > free_memory {
            return Err(Shortfall::Memory { need: hold.memory_bytes, free: free_memory });
        }
        let free_storage = self.capacity.storage_bytes.saturating_sub(self.used_storage);
        if hold.storage_bytes > free_storage {
            return Err(Shortfall::Storage { need: hold.storage_bytes, free: free_storage });
        }
        let mut positions = Vec::new();
        for (i, u) in hold.units.iter().enumerate() {
            for idx in &u.gpu_devices {
                let pos = self.capacity.gpus.iter().position(|g| g.index == *idx);
                match pos {
                    Some(p) if self.gpu_holder[p].is_none() && !positions.contains(&p) => {
                        positions.push(p)
                    }
                    _ => return Err(Shortfall::Gpu { unit: i + 1, need: 1, free: 0 }),
                }
            }
        }
        for p in positions {
            self.gpu_holder[p] = Some(*key);
        }
        self.used_cpu += hold.cpu_millis;
        self.used_memory += hold.memory_bytes;
        self.used_storage += hold.storage_bytes;
        self.holds.insert(*key, hold);
        Ok(())
    }

    /// Gives back what `key` holds; false when it held nothing.
    pub fn release(&mut self, key: &OrderId) -> bool {
        let Some(hold) = self.holds.remove(key) else { return false };
        self.used_cpu -= hold.cpu_millis;
        self.used_memory -= hold.memory_bytes;
        self.used_storage -= hold.storage_bytes;
        for h in &mut self.gpu_holder {
            if h.as_ref() == Some(key) {
                *h = None;
            }
        }
        true
    }

    pub fn free(&self) -> Free {
        let mut gpus = BTreeMap::new();
        for (d, g) in self.capacity.gpus.iter().enumerate() {
            let e = gpus.entry(g.model.clone()).or_insert(0);
            if self.gpu_holder[d].is_none() {
                *e += 1;
            }
        }
        Free {
            cpu_millis: self.capacity.cpu_millis - self.used_cpu,
            memory_bytes: self.capacity.memory_bytes - self.used_memory,
            storage_bytes: self.capacity.storage_bytes - self.used_storage,
            gpus,
        }
    }

    /// Checks that the books balance: totals equal the sum of holds, nothing exceeds the
    /// capacity, and each GPU has at most one holder that really holds it.
    pub fn check(&self) -> Result<(), Unbalanced> {
        self.balance().map_err(Unbalanced)
    }

    fn balance(&self) -> Result<(), String> {
        let sum = |f: fn(&Hold) -> u64| self.holds.values().map(f).sum::<u64>();
        if sum(|h| h.cpu_millis) != self.used_cpu
            || sum(|h| h.memory_bytes) != self.used_memory
            || sum(|h| h.storage_bytes) != self.used_storage
        {
            return Err("used totals differ from the sum of holds".into());
        }
        if self.used_cpu > self.capacity.cpu_millis
            || self.used_memory > self.capacity.memory_bytes
            || self.used_storage > self.capacity.storage_bytes
        {
            return Err("more is held than the machine has".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, hold) in &self.holds {
            for idx in hold.units.iter().flat_map(|u| &u.gpu_devices) {
                if !seen.insert(*idx) {
                    return Err(format!("GPU {idx} is held twice"));
                }
                let pos = self.capacity.gpus.iter().position(|g| g.index == *idx);
                if pos.and_then(|p| self.gpu_holder[p].as_ref()) != Some(key) {
                    return Err(format!("GPU {idx} is not marked as held by {key}"));
                }
            }
        }
        if self.gpu_holder.iter().flatten().count() != seen.len() {
            return Err("a GPU is marked held by no hold".into());
        }
        Ok(())
    }
}

fn accepted(options: &[GpuSpec], g: &GpuDevice) -> bool {
    let offer = GpuOffer {
        units: 1,
        vendor: g.vendor.clone(),
        model: g.model.clone(),
        ram: g.ram.clone(),
        interface: g.interface.clone(),
    };
    options.is_empty() || options.iter().any(|o| o.accepts(&offer))
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;

    use super::*;

    /// The order of deployment `n` of one owner: a hold's key.
    fn order(n: u8) -> OrderId {
        OrderId { owner: gridlease_types::Address([1; 20]), dseq: u64::from(n), gseq: 1, oseq: 1 }
    }

    fn gpu(index: u32, model: &str) -> GpuDevice {
        GpuDevice {
            index,
            vendor: "nvidia".into(),
            model: model.into(),
            ram: "24Gi".into(),
            interface: "pcie".into(),
            uuid: None,
            cdi_name: format!("nvidia.com/gpu={index}"),
        }
    }

    fn capacity() -> Capacity {
        Capacity {
            cpu_millis: 8_000,
            memory_bytes: 32 << 30,
            storage_bytes: 100 << 30,
            gpus: vec![gpu(0, "rtx4090"), gpu(1, "rtx4090"), gpu(2, "a100"), gpu(3, "a100")],
        }
    }

    fn spec(model: Option<&str>) -> GpuSpec {
        GpuSpec {
            vendor: "nvidia".into(),
            model: model.map(str::to_string),
            ram: None,
            interface: None,
        }
    }

    fn unit(cpu: u64, count: u32, gpus: u32, options: Vec<GpuSpec>) -> UnitRequest {
        UnitRequest {
            cpu_millis: cpu,
            memory_bytes: 1 << 30,
            storage_bytes: 1 << 30,
            count,
            gpu_units: gpus,
            gpu_options: options,
        }
    }

    #[test]
    fn picks_the_best_ranked_model_and_never_double_books() {
        let mut r = Reservations::new(capacity());
        let cheap_first = |g: &GpuDevice| if g.model == "rtx4090" { 0 } else { 1 };
        let h = r.reserve(&order(1), &[unit(1000, 1, 2, vec![])], cheap_first).expect("fits");
        assert_eq!(h.units[0].gpu.as_ref().map(|g| g.model.as_str()), Some("rtx4090"));
        assert_eq!(h.units[0].gpu_devices, vec![0, 1]);
        // Only the a100s are left; a 4090-only order cannot be held.
        let err =
            r.reserve(&order(2), &[unit(1000, 1, 1, vec![spec(Some("rtx4090"))])], cheap_first);
        assert_eq!(err, Err(Shortfall::Gpu { unit: 1, need: 1, free: 0 }));
        let h = r.reserve(&order(3), &[unit(1000, 2, 1, vec![spec(Some("*"))])], cheap_first);
        assert_eq!(h.map(|h| h.units[0].gpu_devices.clone()), Ok(vec![2, 3]));
        assert!(r.release(&order(1)));
        assert_eq!(r.free().gpus.get("rtx4090"), Some(&2));
        assert_eq!(r.free().gpus.get("a100"), Some(&0));
        r.check().expect("books balance");
    }

    #[test]
    fn cpu_memory_and_storage_are_limits() {
        let mut r = Reservations::new(capacity());
        let e = r.reserve(&order(1), &[unit(5_000, 2, 0, vec![])], |_| 0);
        assert_eq!(e, Err(Shortfall::Cpu { need: 10_000, free: 8_000 }));
        assert!(r.reserve(&order(1), &[unit(4_000, 2, 0, vec![])], |_| 0).is_ok());
        assert!(matches!(
            r.reserve(&order(2), &[unit(1, 1, 0, vec![])], |_| 0),
            Err(Shortfall::Cpu { .. })
        ));
        assert!(matches!(
            r.reserve(&order(1), &[unit(0, 1, 0, vec![])], |_| 0),
            Err(Shortfall::AlreadyHeld(_))
        ));
    }

    #[test]
    fn restore_refuses_what_no_longer_fits() {
        let mut r = Reservations::new(capacity());
        let hold = r.reserve(&order(1), &[unit(1000, 1, 2, vec![])], |_| 0).expect("fits");
        let mut fresh = Reservations::new(capacity());
        fresh.restore(&order(1), hold.clone()).expect("restores");
        assert!(fresh.restore(&order(2), hold).is_err());
        fresh.check().expect("books balance");
    }

    #[derive(Clone, Debug)]
    enum Op {
        Reserve { key: u8, cpu: u64, count: u32, gpus: u32, model: Option<u8> },
        Release { key: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, 0u64..4_000, 1u32..4, 0u32..3, proptest::option::of(0u8..2)).prop_map(
                |(key, cpu, count, gpus, model)| Op::Reserve { key, cpu, count, gpus, model }
            ),
            (0u8..12).prop_map(|key| Op::Release { key }),
        ]
    }

    proptest! {
        #[test]
        fn random_sequences_never_over_allocate(ops in proptest::collection::vec(op(), 1..80)) {
            let mut r = Reservations::new(capacity());
            for op in ops {
                match op {
                    Op::Reserve { key, cpu, count, gpus, model } => {
                        let options = match model {
                            Some(0) => vec![spec(Some("rtx4090"))],
                            Some(_) => vec![spec(Some("a100"))],
                            None => vec![],
                        };
                        let before = r.free();
                        match r.reserve(&order(key), &[unit(cpu, count, gpus, options)], |_| 0) {
                            Ok(h) => {
                                let n: usize = h.units.iter().map(|u| u.gpu_devices.len()).sum();
                                prop_assert_eq!(n as u32, gpus * count);
                            }
                            Err(_) => prop_assert_eq!(before, r.free()),
                        }
                    }
                    Op::Release { key } => { r.release(&order(key)); }
                }
                prop_assert_eq!(r.check(), Ok(()));
            }
        }
    }
}
