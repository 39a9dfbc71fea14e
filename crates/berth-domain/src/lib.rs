//! berth's domain: the words of the product (project, stage, instance, deploy, route…) as
//! validated types, the pure logic on them, and the ports (traits) through which services
//! reach the outside world.
//!
//! Architecture invariant: this crate does no I/O. It knows no HTTP, no SQL, no bollard;
//! adapters implement its ports, the store persists its types.

pub mod deploy;
pub mod image;
pub mod model;
pub mod names;
pub mod oidc;
pub mod plan;
pub mod ports;
pub mod role;
pub mod subdomain;
pub mod tag_pattern;
pub mod tags;

pub use image::ImageRef;
pub use names::{NameError, ProjectName, StageName, Username};
pub use role::Role;
pub use tag_pattern::TagPattern;
