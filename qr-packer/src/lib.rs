//! Turns an enrollment application (a phone half and a device half) into a
//! payload small enough for one printed QR code, and back.
//!
//! | step | module |
//! | --- | --- |
//! | remove what the runtime does not need from a component | [`strip`] |

pub mod strip;
