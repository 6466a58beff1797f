//! nf_tables over netlink: the proxy's rules reach the kernel as one
//! nfnetlink batch (one transaction: all of it or nothing), written here
//! message by message, with no `nft` process in between.
//!
//! Why not `nft -f`: before it applies even a one-line change, nft 1.0
//! reads back the chains of the table it is told about, so a change costs
//! about as much as listing a 5000-Service table (see bench/README.md). The
//! proxy knows its own table; it only needs to say what changes.
//!
//! The wire format is the kernel's (`include/uapi/linux/netfilter/
//! nf_tables.h`, `nfnetlink.h`): a message is an `nlmsghdr`, an `nfgenmsg`
//! and attributes (type-length-value, 4-byte aligned, numbers in network
//! byte order unless said otherwise). [`Batch`] writes them; [`Socket`]
//! sends a batch and reads the kernel's verdict on it.

use rustix::net::{AddressFamily, SocketFlags, SocketType, netlink};
use std::os::fd::OwnedFd;

/// `NFNL_SUBSYS_NFTABLES`, the high byte of a message type.
const SUBSYS_NFTABLES: u16 = 10;
const MSG_BATCH_BEGIN: u16 = 0x10;
const MSG_BATCH_END: u16 = 0x11;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_CREATE`: create if missing (without `NLM_F_EXCL`, an existing object is fine).
pub const F_CREATE: u16 = 0x400;
/// `NLM_F_APPEND`: add the rule at the end of its chain.
pub const F_APPEND: u16 = 0x800;
const NLA_F_NESTED: u16 = 0x8000;
/// `NFPROTO_IPV4`: the `ip` family.
pub const FAMILY_IP: u8 = 2;
const FAMILY_UNSPEC: u8 = 0;

/// nf_tables message types (`enum nf_tables_msg_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum Msg {
    /// Add a table.
    NewTable = 0,
    /// Delete a table.
    DelTable = 2,
    /// Add a chain.
    NewChain = 3,
    /// Delete a chain.
    DelChain = 5,
    /// Add a rule.
    NewRule = 6,
    /// Delete rules (all of a chain's when no handle is given).
    DelRule = 8,
    /// Add a set or map.
    NewSet = 9,
    /// Delete a set or map.
    DelSet = 11,
    /// Add set elements.
    NewSetElem = 12,
    /// Delete set elements.
    DelSetElem = 14,
}

impl Msg {
    fn verb(code: u16) -> &'static str {
        match code {
            0 => "add table",
            2 => "delete table",
            3 => "add chain",
            5 => "delete chain",
            6 => "add rule",
            8 => "flush chain",
            9 => "add set",
            11 => "delete set",
            12 => "add element",
            14 => "delete element",
            _ => "message",
        }
    }
}

/// Why the kernel refused a batch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The netlink socket could not be opened or used.
    #[error("netlink to nf_tables: {0}")]
    Io(#[from] std::io::Error),
    /// The kernel refused a message; the whole batch was rolled back.
    #[error("nf_tables refused {what} (message {index} of the batch{label}): {errno}")]
    Refused {
        /// The message's verb and object, e.g. `add rule in chain x`.
        what: String,
        /// Its position in the batch (0 is the first after the batch start).
        index: usize,
        /// What the batch's writer said the message was, when it said.
        label: String,
        /// The kernel's error.
        errno: std::io::Error,
    },
    /// The kernel said neither yes nor no.
    #[error("nf_tables did not acknowledge the batch")]
    NoAck,
}

/// A result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One nfnetlink batch being written: messages between a batch start and a
/// batch end, each with its own sequence number.
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    /// Messages written (the batch start not counted).
    count: u32,
    /// Where the open message starts.
    open: Option<usize>,
    /// Where the last nf_tables message starts.
    last: Option<usize>,
    /// Open nests' starts.
    nests: Vec<usize>,
    /// `(message index, text)`: what the writer said the next messages are.
    labels: Vec<(u32, String)>,
    /// The next set id (the kernel asks one of every new set).
    set_id: u32,
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// An empty batch (its start written).
    pub fn new() -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            count: 0,
            open: None,
            last: None,
            nests: Vec::new(),
            labels: Vec::new(),
            set_id: 1,
        };
        b.header(MSG_BATCH_BEGIN, NLM_F_REQUEST, FAMILY_UNSPEC, 0);
        b.finish_header();
        b
    }

    /// Messages written so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether no message was written.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Says what the next message is (or starts), for error reports.
    pub fn label(&mut self, text: impl Into<String>) {
        self.labels.push((self.count + 1, text.into()));
    }

    /// A fresh set id.
    pub fn next_set_id(&mut self) -> u32 {
        self.set_id += 1;
        self.set_id
    }

    fn header(&mut self, ty: u16, flags: u16, family: u8, seq: u32) {
        self.open = Some(self.buf.len());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set when the message ends
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        // nfgenmsg: family, version 0, resource id (the subsystem, for batches).
        self.buf.push(family);
        self.buf.push(0);
        let res = if family == FAMILY_UNSPEC { SUBSYS_NFTABLES } else { 0 };
        self.buf.extend_from_slice(&res.to_be_bytes());
    }

    fn finish_header(&mut self) {
        if let Some(start) = self.open.take() {
            let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
            self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        }
    }

    /// Starts an nf_tables message of the `ip` family.
    pub fn begin(&mut self, msg: Msg, flags: u16) {
        self.end();
        self.count += 1;
        self.last = Some(self.buf.len());
        let seq = self.count;
        self.header((SUBSYS_NFTABLES << 8) | msg as u16, NLM_F_REQUEST | flags, FAMILY_IP, seq);
    }

    /// Ends the open message, if any.
    pub fn end(&mut self) {
        debug_assert!(self.nests.is_empty(), "every nest is closed before its message ends");
        self.finish_header();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// An attribute with raw bytes.
    pub fn bytes_attr(&mut self, ty: u16, value: &[u8]) {
        let len = u16::try_from(4 + value.len()).expect("an attribute fits in 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
    }

    /// A NUL-terminated string attribute.
    pub fn str_attr(&mut self, ty: u16, value: &str) {
        let len = u16::try_from(5 + value.len()).expect("an attribute fits in 64 KiB");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.push(0);
        self.pad();
    }

    /// A 32-bit attribute in network byte order.
    pub fn u32_attr(&mut self, ty: u16, value: u32) {
        self.bytes_attr(ty, &value.to_be_bytes());
    }

    /// A 64-bit attribute in network byte order.
    pub fn u64_attr(&mut self, ty: u16, value: u64) {
        self.bytes_attr(ty, &value.to_be_bytes());
    }

    /// Opens a nested attribute; close it with [`Batch::close`].
    pub fn open(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    /// Closes the innermost open nest.
    pub fn close(&mut self) {
        let start = self.nests.pop().expect("a nest is open");
        let len = u16::try_from(self.buf.len() - start).expect("an attribute fits in 64 KiB");
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Ends the batch; its bytes, ready to send.
    fn finish(&mut self) -> &[u8] {
        self.end();
        let seq = self.count + 1;
        self.header(MSG_BATCH_END, NLM_F_REQUEST, FAMILY_UNSPEC, seq);
        self.finish_header();
        &self.buf
    }

    /// Marks the last message for an acknowledgement: once it is read, the
    /// kernel has committed or rolled back the whole batch.
    fn ack_last(&mut self) -> Option<u32> {
        self.end();
        let at = self.last?;
        let flags = u16::from_ne_bytes(self.buf[at + 6..at + 8].try_into().expect("2 bytes")) | NLM_F_ACK;
        self.buf[at + 6..at + 8].copy_from_slice(&flags.to_ne_bytes());
        Some(self.count)
    }

    fn label_of(&self, index: u32) -> String {
        match self.labels.iter().rev().find(|(at, _)| *at <= index) {
            Some((at, text)) if *at == index => format!(": {text}"),
            Some((at, text)) => format!(", {} after the start of {text}", index - at),
            None => String::new(),
        }
    }
}

/// A netlink socket to nf_tables.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    /// Opens one (needs CAP_NET_ADMIN to change anything).
    pub fn open() -> Result<Socket> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            Some(netlink::NETFILTER),
        )
        .map_err(std::io::Error::from)?;
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 0)).map_err(std::io::Error::from)?;
        Ok(Socket { fd })
    }

    /// Sends `batch` as one transaction and returns once the kernel has
    /// applied it, or with the first message it refused (nothing applied).
    pub fn apply(&self, mut batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let Some(ack_seq) = batch.ack_last() else { return Ok(()) };
        let bytes = batch.finish();
        // The batch travels in one datagram; the send buffer must hold it.
        let want = bytes.len() + 64 * 1024;
        if rustix::net::sockopt::socket_send_buffer_size(&self.fd).unwrap_or(0) < want {
            let _ = rustix::net::sockopt::set_socket_send_buffer_size_force(&self.fd, want)
                .or_else(|_| rustix::net::sockopt::set_socket_send_buffer_size(&self.fd, want));
        }
        let sent = rustix::net::send(&self.fd, bytes, rustix::net::SendFlags::empty()).map_err(std::io::Error::from)?;
        if sent != bytes.len() {
            return Err(Error::Io(std::io::Error::other("netlink sent a partial batch")));
        }
        // The kernel handles the batch within send(): every answer is queued by now.
        let mut first_error: Option<(u32, i32, u16)> = None;
        let mut acked = false;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match rustix::net::recv(&self.fd, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => n,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::Io(e.into())),
            };
            let mut at = 0;
            while at + NLMSG_HDRLEN <= n {
                let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                let ty = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().expect("2 bytes"));
                let seq = u32::from_ne_bytes(buf[at + 8..at + 12].try_into().expect("4 bytes"));
                if len < NLMSG_HDRLEN || at + len > n {
                    break;
                }
                if ty == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 + NLMSG_HDRLEN {
                    let body = &buf[at + NLMSG_HDRLEN..at + len];
                    let code = i32::from_ne_bytes(body[0..4].try_into().expect("4 bytes"));
                    let msg_type = u16::from_ne_bytes(body[8..10].try_into().expect("2 bytes"));
                    if code != 0 && first_error.is_none() {
                        first_error = Some((seq, -code, msg_type & 0xff));
                    }
                    if seq == ack_seq {
                        acked = true;
                    }
                }
                at += len.div_ceil(4) * 4;
            }
        }
        if let Some((seq, errno, msg_type)) = first_error {
            return Err(Error::Refused {
                what: Msg::verb(msg_type).to_string(),
                index: seq.saturating_sub(1) as usize,
                label: batch.label_of(seq),
                errno: std::io::Error::from_raw_os_error(errno),
            });
        }
        if acked { Ok(()) } else { Err(Error::NoAck) }
    }
}
