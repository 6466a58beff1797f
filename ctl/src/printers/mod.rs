//! How rkubectl shows objects: [`columns`] builds each kind's [`table`],
//! [`describe`] writes the key/value descriptions, [`object`] writes YAML
//! (through [`yaml`]), JSON and names; [`tabwriter`] aligns like Go's
//! tabwriter and [`age`] writes times like kubectl.

pub mod age;
pub mod columns;
pub mod describe;
pub mod object;
pub mod table;
pub mod tabwriter;
pub mod yaml;
