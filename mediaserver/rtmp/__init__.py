"""Our RTMP server: handshake, chunk streams, AMF0 commands, publish sessions."""
