from pqwatch.cli import main

main()
