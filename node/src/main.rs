//! `skrei`: run a node of the skrei compute network, or talk to one.
fn main() {}
