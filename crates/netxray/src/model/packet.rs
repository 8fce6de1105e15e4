//! TEMPORARY stub (replaced by the decoder branch).
#[derive(Debug, Clone, Copy)]
pub struct VlanTag {
    pub tpid: u16,
    pub pcp: u8,
    pub dei: bool,
    pub vid: u16,
}
pub struct CaptureInfo {
    pub has_l2: bool,
    pub l3_off: usize,
    pub protocol: u16,
    pub hw_vlan: Option<VlanTag>,
}
pub struct Packet;
pub fn decode(_data: &[u8], _info: &CaptureInfo) -> Packet {
    Packet
}
