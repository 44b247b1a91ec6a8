"""The gateway: screens requests and outputs around an image generator, and marks what passes."""
