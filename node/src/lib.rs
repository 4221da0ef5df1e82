//! The parts of the `skrei` node that are more than flag parsing: the
//! network layer today, the driver, executors and API as they land. A
//! library so that the binary and the integration tests in `tests/` use the
//! same code.

pub mod p2p;
