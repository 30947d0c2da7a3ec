//! Settings: the expression language shared by every configurable path and value.
//!
//! The typed settings model (levels, origins, the `config` verbs) grows here; today it
//! holds the expression engine that the `system.path.*` tier is written in.

pub mod expr;
