//! Finds the shared libraries an ELF binary needs, as `ldd` would.
//! (Being written.)
