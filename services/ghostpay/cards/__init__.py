"""The cards service: issue single-use virtual cards, show and list them, close them."""
