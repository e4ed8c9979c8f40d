from colorlab.cli import main

main()
