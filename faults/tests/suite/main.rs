//! The fault suite, in one test binary: each file is a module, and nextest still runs each
//! test in a process of its own (one binary is linked once, where a binary per file linked
//! every file).

mod broker;
mod fuzz;
mod isolation;
mod kill;
mod parsers;
mod postgres;
mod redis;
mod restart;
mod slow;
mod stop;
