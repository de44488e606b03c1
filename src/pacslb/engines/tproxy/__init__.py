"""TPROXY's host side (transparent: true): the nftables socket match, the policy rule and the local route table."""
