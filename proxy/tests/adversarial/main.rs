//! Adversarial tests of the egress proxy over real loopback sockets
//! (issue 3). Each test names the requirement it checks.

mod harness;

mod connect;
mod deny;
mod domains;
mod gate;
mod heads;
mod keepalive;
mod limits;
mod malformed;
mod own;
mod ports;
mod resolution;
