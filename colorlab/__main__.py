from colorlab.training.cli import main

main()
