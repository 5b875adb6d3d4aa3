//! Binding the production DNS sockets: several UDP sockets sharing `dns.port` through
//! `SO_REUSEPORT` (the kernel spreads queries over them, one answer loop each) and one TCP
//! listener on the same port.

use std::io;
use std::net::{IpAddr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};

/// The bound DNS sockets, ready for [`crate::Listeners`].
pub struct DnsSockets {
    /// UDP sockets, all bound to `local_addr`.
    pub udp: Vec<UdpSocket>,
    /// The TCP listener on the same address.
    pub tcp: TcpListener,
    /// The address both serve (the real port when port 0 was asked for).
    pub local_addr: SocketAddr,
}

/// Attempts at finding a port free for both UDP and TCP when port 0 is asked for.
const PORT_ZERO_ATTEMPTS: usize = 20;

/// Binds `udp_sockets` (at least one) UDP sockets and a TCP listener on `host:port`. With
/// port 0 the first UDP socket picks a free port and the others follow it; if that port is
/// taken for TCP, another one is tried. Each UDP socket asks for `receive_buffer` bytes of
/// receive buffer (0 keeps the system default).
pub async fn bind(
    host: IpAddr,
    port: u16,
    udp_sockets: usize,
    receive_buffer: usize,
) -> io::Result<DnsSockets> {
    let attempts = if port == 0 { PORT_ZERO_ATTEMPTS } else { 1 };
    let mut last_error = None;
    for _ in 0..attempts {
        match bind_once(SocketAddr::new(host, port), udp_sockets, receive_buffer).await {
            Ok(sockets) => return Ok(sockets),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => last_error = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
}

async fn bind_once(
    addr: SocketAddr,
    udp_sockets: usize,
    receive_buffer: usize,
) -> io::Result<DnsSockets> {
    let first = reuse_port_udp(addr, receive_buffer)?;
    let local_addr = first.local_addr()?;
    let mut udp = vec![first];
    for _ in 1..udp_sockets.max(1) {
        udp.push(reuse_port_udp(local_addr, receive_buffer)?);
    }
    let tcp = TcpListener::bind(local_addr).await?;
    Ok(DnsSockets {
        udp,
        tcp,
        local_addr,
    })
}

fn reuse_port_udp(addr: SocketAddr, receive_buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if receive_buffer > 0 {
        socket.set_recv_buffer_size(receive_buffer)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}
