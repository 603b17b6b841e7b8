//! sinter facade
