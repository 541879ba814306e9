//! Pieces every page uses: the application shell and the loading and error states.

pub mod layout;
pub mod status;
pub mod tables;
