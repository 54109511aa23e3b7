"""``python -m rqvae_lib fit|validate|test|predict ...``: see ``rqvae_lib.cli``."""

from rqvae_lib.cli import main

if __name__ == "__main__":
    main()
