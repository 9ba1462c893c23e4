// SPDX-License-Identifier: MPL-2.0
//! The `vigilfailover` GStreamer plugin (work in progress).
