//! Settings: the keys kanibako knows ([`keys`]), how a value is picked from the levels
//! box > workset > crab > system > default ([`stack`]), and the expression language
//! paths are written in ([`expr`]), and the typed hardening values ([`value`]).

pub mod expr;
pub mod keys;
pub mod stack;
pub mod value;
pub mod write_lock;
