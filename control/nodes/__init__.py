"""Media nodes as the control plane sees them: their registry (heartbeats, which node
carries which session, which went silent), the secret they share with the control plane,
and the calls the control plane makes to them."""
