"""What is simulated: the ion catalogue and salts (:mod:`.chemistry`), packed boxes (:mod:`.boxes`) and campaign
specifications (:mod:`.campaign`)."""
