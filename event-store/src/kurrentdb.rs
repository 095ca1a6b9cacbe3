//! The KurrentDB backend (in progress).
