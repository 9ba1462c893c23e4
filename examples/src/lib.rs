// SPDX-License-Identifier: MPL-2.0
//! Example programs for vigil: see the `examples` targets of this package.
