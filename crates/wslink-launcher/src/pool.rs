//! The pool of (host, port) pairs sessions run on.
//!
//! It hands them out in the order Kitware's launcher does, so a deployment
//! sees the same ports: the host with the most free ports first (the first
//! listed on a tie), its highest free port first, and a freed port is the
//! next one given out on its host.
//!
//! ```
//! use wslink_launcher::config::Resource;
//! use wslink_launcher::pool::ResourcePool;
//!
//! let mut pool = ResourcePool::new(&[Resource { host: "localhost".into(), port_range: [9001, 9002] }]);
//! let a = pool.take().unwrap();
//! let b = pool.take().unwrap();
//! assert_eq!((a.1, b.1), (9002, 9001));
//! assert_eq!(pool.take(), None);
//! pool.give_back(&a.0, a.1);
//! assert_eq!(pool.take(), Some(("localhost".to_owned(), 9002)));
//! ```

use crate::config::Resource;

#[derive(Debug, Clone)]
struct Host {
    name: String,
    available: Vec<u16>,
    used: Vec<u16>,
}

/// Free and used ports, per host.
#[derive(Debug, Clone)]
pub struct ResourcePool {
    hosts: Vec<Host>,
}

impl ResourcePool {
    /// A pool with every port of `resources` free.
    pub fn new(resources: &[Resource]) -> Self {
        let mut hosts: Vec<Host> = Vec::new();
        for r in resources {
            let ports = r.port_range[0]..=r.port_range[1];
            match hosts.iter_mut().find(|h| h.name == r.host) {
                Some(h) => {
                    let new: Vec<u16> = ports.filter(|p| !h.available.contains(p)).collect();
                    h.available.extend(new);
                }
                None => hosts.push(Host {
                    name: r.host.clone(),
                    available: ports.collect(),
                    used: Vec::new(),
                }),
            }
        }
        ResourcePool { hosts }
    }

    /// Takes a free (host, port), or `None` when all are in use.
    pub fn take(&mut self) -> Option<(String, u16)> {
        let mut best: Option<&mut Host> = None;
        for h in &mut self.hosts {
            if h.available.len() > best.as_ref().map_or(0, |b| b.available.len()) {
                best = Some(h);
            }
        }
        let host = best?;
        let port = host.available.pop()?;
        host.used.push(port);
        Some((host.name.clone(), port))
    }

    /// Returns a port taken earlier; anything else is ignored.
    pub fn give_back(&mut self, host: &str, port: u16) {
        if let Some(h) = self.hosts.iter_mut().find(|h| h.name == host) {
            if let Some(i) = h.used.iter().position(|p| *p == port) {
                h.used.swap_remove(i);
                h.available.push(port);
            }
        }
    }

    /// Free ports, all hosts together.
    pub fn free(&self) -> usize {
        self.hosts.iter().map(|h| h.available.len()).sum()
    }

    /// Ports in use, all hosts together.
    pub fn in_use(&self) -> usize {
        self.hosts.iter().map(|h| h.used.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(host: &str, a: u16, b: u16) -> Resource {
        Resource {
            host: host.into(),
            port_range: [a, b],
        }
    }

    #[test]
    fn the_host_with_most_free_ports_goes_first() {
        let mut pool = ResourcePool::new(&[res("a", 1, 2), res("b", 10, 12)]);
        assert_eq!(pool.take(), Some(("b".into(), 12)));
        assert_eq!(
            pool.take(),
            Some(("a".into(), 2)),
            "a tie goes to the first host"
        );
        assert_eq!(pool.take(), Some(("b".into(), 11)));
        assert_eq!((pool.free(), pool.in_use()), (2, 3));
        pool.give_back("a", 2);
        pool.give_back("a", 2);
        pool.give_back("zz", 1);
        assert_eq!((pool.free(), pool.in_use()), (3, 2));
    }

    #[test]
    fn ranges_of_one_host_add_up() {
        let mut pool = ResourcePool::new(&[res("a", 1, 1), res("a", 5, 5), res("a", 1, 1)]);
        assert_eq!(pool.free(), 2);
        assert_eq!(pool.take(), Some(("a".into(), 5)));
    }
}
