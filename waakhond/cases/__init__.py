"""DSA notice and action: notices (Art. 16), TAKE IT DOWN requests and authority orders."""
