// SPDX-License-Identifier: MPL-2.0
//! The `vigildav1d` GStreamer plugin (work in progress).
