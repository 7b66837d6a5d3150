//! The `caseway` binary's tests, in one test binary: each file is a module, and nextest still
//! runs each test in a process of its own.

mod cli;
mod dev;
mod serve;
#[path = "../support/mod.rs"]
mod support;
