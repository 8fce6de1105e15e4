//! Filling a TraceEvent from a decoded Packet (placeholder until the decoder lands).
use crate::model::event::TraceEvent;
use crate::model::packet::Packet;

pub fn apply(_ev: &mut TraceEvent, _pkt: &Packet) {}
