"""The VIP addresses of a single node (settings.network.interface) as an engine of the appliance."""
