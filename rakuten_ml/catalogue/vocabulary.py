"""Word lists of the synthetic catalogue: one vocabulary per class, per confusable group, and a shared one.

Data only (the sampling lives in :mod:`rakuten_ml.catalogue.text`). Lists are ordered roughly by how often
a seller would use the word: the sampler gives earlier tokens more weight (Zipf). A token may hold several
words and placeholders: ``#`` becomes a digit and ``@`` an upper-case letter when a row is written.

Classes the real data confuses share a group vocabulary and have a low ``specificity`` (the mean share of
a row's content words drawn from the class's own list), so the seed model misses the same ones it misses
on the real catalogue (10, 1281, 1180, 40) instead of scoring 0.99.
"""

from __future__ import annotations

from dataclasses import dataclass


def _tokens(text: str) -> tuple[str, ...]:
    """Split a '|'-separated word list (newlines are only layout)."""
    return tuple(tok.strip() for tok in text.split("|") if tok.strip())


@dataclass(frozen=True)
class ClassVocabulary:
    code: int
    group: str  # key of GROUP_WORDS; classes sharing a group are the confusable ones
    words: tuple[str, ...]
    # Mean share of a row's content words taken from `words` (the rest: sibling classes, group, generic).
    specificity: float


GROUP_WORDS: dict[str, tuple[str, ...]] = {
    "books": _tokens(
        """livre | roman | auteur | édition | tome | collection | lecture | histoire | broché | poche | relié
        | couverture | pages | #### pages | Tome # | ISBN 978-2-###-#####-# | illustré | illustrations | préface
        | Gallimard | Hachette | Flammarion | Folio | Le Livre de Poche | Pocket | J'ai Lu | Albin Michel | Seuil
        | Larousse | récit | biographie | essai | poésie | nouvelles | bande dessinée | BD | littérature | texte
        | chapitre | édition de #### | Dumas | Zola | Balzac | Camus | Maupassant | Jules Verne | Simenon
        | Agatha Christie | Stephen King | Victor Hugo | mémoires | souvenirs | guerre | amour | voyage | France
        | Paris | histoire de France | jeunesse | policier | lecteur | éditeur | format | volume | numéro | N° ###
        | français | revue | journal | magazine | manga | série | édition spéciale | Dupuis | Dargaud | Casterman"""
    ),
    "videogames": _tokens(
        """jeu | jeux | jeu vidéo | jeux vidéo | Playstation | PS4 | PS3 | PS2 | PS5 | Xbox | Xbox 360 | Xbox One
        | Nintendo | Switch | Wii | Wii U | DS | 3DS | Game Boy | GameCube | Sega | PSP | PS Vita | PC | Sony
        | Microsoft | Ubisoft | Electronic Arts | Activision | Mario | Zelda | Pokémon | FIFA ## | Call of Duty
        | GTA | Assassin's Creed | Sonic | Crash Bandicoot | Final Fantasy | Resident Evil | PEGI ## | PEGI #
        | version française | VF | édition collector | multijoueur | gamer | gaming | jouer | joueur | niveau
        | aventure | action | course | combat | RPG | plateforme | en ligne | console | manette | game | video game
        | Spiel | Konsole | édition | complet | testé | fonctionne | Mario Kart | Minecraft | Lego | Just Dance"""
    ),
    "toys": _tokens(
        """jeu | jouet | enfant | enfants | dès # ans | à partir de # ans | # ans et + | garçon | fille | famille
        | Hasbro | Mattel | Ravensburger | Djeco | Janod | Smoby | Lansay | Goliath | cadeau | Noël | anniversaire
        | ludique | éducatif | amusant | de # à # joueurs | jouer | partie | Disney | Pat' Patrouille
        | Reine des Neiges | Cars | puzzle | ### pièces | cartes | boîte | kids | toy | Spielzeug | Kinder | fun
        | coloré | apprendre | jeu éducatif | jeu de rôle | Harry Potter | Star Wars | Marvel | Pokémon | dés
        | mémoire | observation | rapidité | logique | défi | règle du jeu"""
    ),
    "figurines": _tokens(
        """figurine | figurines | statue | collection | collector | ## cm | PVC | résine | personnage | Funko Pop
        | Pop! | Marvel | DC Comics | Star Wars | Dragon Ball | One Piece | Naruto | manga | anime | Bandai
        | Banpresto | édition limitée | socle | articulée | Neca | McFarlane | Hot Toys | Tsume | figure
        | action figure | héros | super-héros | série | boîte | peinte à la main | détails | Batman | Spider-Man
        | Goku | Luffy | Dark Vador | Iron Man | Japon | import | officielle | licence | jeu | Figur | Sammlung"""
    ),
    "garden": _tokens(
        """jardin | extérieur | terrasse | outdoor | garden | balcon | résistant | intempéries | anti-UV | acier
        | aluminium | résine | PVC | pompe | tuyau | arrosage | Gardena | Hozelock | Bestway | Intex | Leroy Merlin
        | Castorama | entretien | été | soleil | eau | montage | facile à monter | robuste | galvanisé | bâche
        | housse | protection | Garten | Wasser | ##x##x## cm | kit | accessoire | bricolage | maison | Vidaxl
        | professionnel | électrique | ### W | moteur | filtre | échelle | table | douche"""
    ),
    "home": _tokens(
        """maison | intérieur | salon | chambre | cuisine | salle de bain | décor | design | moderne | élégant
        | style | beige | bois | tissu | confort | confortable | doux | pratique | rangement | décoration | tendance
        | cosy | scandinave | vintage | home | living | Wohnzimmer | Haus | ##x## cm | coussin | tapis | rideau
        | plaid | miroir | étagère | lampe | pieds | bois massif | chêne | lin | velours | coton | Vidaxl | Ikea
        | Maisons du Monde | Atmosphera | meuble | table | couverture | blanc cassé | taupe | anthracite"""
    ),
    # Classes the real data seldom confuses: their group list is empty and they lean on their own words.
    "cards": (),
    "models": (),
    "bar": (),
    "outdoor": (),
    "baby": (),
    "food": (),
    "pets": (),
    "stationery": (),
}

_CLASS_DATA: tuple[tuple[int, str, float, str], ...] = (
    (
        10,
        "books",
        0.25,
        """occasion | ancien | bon état | état correct | année #### | édition originale | exemplaire | jauni
        | vintage | usé | dédicacé | 1ère édition | Presses de la Cité | Club Français du Livre | France Loisirs
        | Bibliothèque Verte | Bibliothèque Rose | Que sais-je ? | cartonnage | reliure cuir | in-8 | in-12
        | tirage limité | rare | épuisé | Plon | Denoël | Calmann-Lévy | Stock | Grasset | Robert Laffont
        | Marabout | Le Masque | Fleuve Noir | Harlequin | Julliard | Mercure de France | Nrf | sous jaquette
        | planches | gravures | tome premier | éditions du Seuil | Hachette #### | Payot | Fayard | Arthaud
        | documentaire | théologie | philosophie | récit de voyage | souvenirs de guerre | histoire locale""",
    ),
    (
        2705,
        "books",
        0.30,
        """neuf | nouveauté | parution | grand format | Actes Sud | Dunod | Eyrolles | Nathan | Bordas | Hatier
        | scolaire | méthode | manuel | guide pratique | cuisine | développement personnel | roman policier
        | thriller | album jeunesse | résumé | quatrième de couverture | l'auteur | best-seller | prix Goncourt
        | cahier d'activités | Editions | Michel Lafon | Pocket Jeunesse | Milan | Bayard | Glénat | Hugo Roman
        | coloriage | apprentissage | examen | concours | leçons | exercices | corrigés | édition ####
        | nouvelle édition | ouvrage | l'ouvrage | découvrez | un roman | premier roman | Guillaume Musso
        | Marc Levy | Joël Dicker | Fred Vargas | feel good | santé | bien-être | psychologie | recettes""",
    ),
    (
        2280,
        "books",
        0.42,
        """magazine | revue | journal | hebdomadaire | mensuel | N° ### | N° #### | du ##/##/#### | numéro spécial
        | hors-série | Paris Match | Le Point | L'Express | Elle | Marie Claire | Télé 7 Jours | L'Équipe
        | Le Monde | Science & Vie | Auto Moto | Spirou | Pilote | Historia | Le Figaro Magazine | Géo
        | Le Nouvel Observateur | Point de Vue | Jours de France | Ciné Revue | Modes & Travaux | Rock & Folk
        | supplément | dossier | interview | reportage | article | actualité | politique | sport | cinéma | mode
        | photos | couverture | janvier | février | mars | avril | mai | juin | juillet | septembre | octobre
        | novembre | décembre | ####""",
    ),
    (
        2403,
        "books",
        0.34,
        """lot | lot de ## | lot de # | collection complète | série complète | ensemble | tomes 1 à ## | volumes
        | lot de ## livres | les ## premiers | intégrale | coffret | Astérix | Tintin | Lucky Luke
        | Blake et Mortimer | Largo Winch | Thorgal | Naruto | One Piece | Dragon Ball | Harlequin
        | Journal de Mickey | encyclopédie | fascicules | atlas | Picsou Magazine | Martine | Le Club des Cinq
        | Chair de poule | lot de BD | lot de mangas | lot de romans | lot de magazines | n° 1 à ## | x ## | suite
        | séries | Les Schtroumpfs | Boule et Bill | Gaston Lagaffe | Titeuf | Spirou et Fantasio | Les Tuniques Bleues
        | Yoko Tsuno | XIII | Bibliothèque de la Pléiade | Reader's Digest | sélection du livre""",
    ),
    (
        40,
        "videogames",
        0.22,
        """jeu | boîte | notice | complet | cartouche | CD | DVD | blu-ray | import | japonais | pal | ntsc | essential
        | platinum | greatest hits | best of | retro | rétrogaming | bande originale | soundtrack | disque
        | jaquette | remastered | game of the year | GOTY | Nintendo Selects | sans notice | en boîte
        | jeu en français | Nintendo 3DS | Game Boy Color | Dreamcast | Saturn | Megadrive | Super Nintendo
        | Nintendo 64 | N64 | NES | PS1 | PSX | The Last of Us | Uncharted | God of War | Halo | Gears of War
        | Red Dead Redemption | Tomb Raider | Need for Speed | Gran Turismo | Tekken | Metal Gear | Kingdom Hearts
        | Skylanders | Disney Infinity | amiibo | CD audio | album | vinyle""",
    ),
    (
        2462,
        "videogames",
        0.27,
        """lot | lot de # jeux | lot de ## jeux | pack | bundle | ensemble | x # jeux | collection | plusieurs | divers
        | assortiment | + # jeux | compilation | lot consoles et jeux | trilogie | pack de démarrage | lot jeux
        | jeux + console | console + # jeux | lot de cartouches | lot manettes | pack complet | lot PS2 | lot Wii
        | lot DS | lot Xbox | lot Game Boy | lot retro | en lot | gros lot | mega pack | vendu en lot | jeux variés
        | ## jeux | les # | pack famille | coffret | avec accessoires""",
    ),
    (
        2905,
        "videogames",
        0.48,
        """PC | jeu PC | DVD-ROM | CD-ROM | Windows | Windows 10 | Windows 7 | Mac | clé Steam | code | téléchargement
        | big box | configuration minimale | processeur | carte graphique | # Go de RAM | DirectX | Micro Application
        | Focus Home | Anuman | simulation | stratégie | gestion | Les Sims | Civilization | Age of Empires | Anno
        | Farming Simulator | Euro Truck Simulator | World of Warcraft | Starcraft | Diablo | Total War
        | Flight Simulator | Football Manager | Cities Skylines | Pro Cycling Manager | Blizzard | Paradox
        | jeu de gestion | jeu de stratégie | extension | add-on | PC DVD | Windows XP | Vista | installation
        | disque dur | Mo | Intel | AMD | NVIDIA | GeForce | Radeon | Origin | Uplay | Epic""",
    ),
    (
        60,
        "videogames",
        0.40,
        """console | pack console | ### Go | # To | 500 Go | 1 To | slim | pro | lite | édition limitée | HDMI
        | alimentation | câble | manette incluse | Switch OLED | PS4 Slim | PS4 Pro | Xbox Series X | Xbox Series S
        | Game Boy Advance | Nintendo 64 | Megadrive | Super Nintendo | NES | mini | classic | reconditionnée
        | fonctionne | testée | console portable | console de salon | PSP Street | DS Lite | DSi | 2DS | New 3DS
        | Xbox One S | Xbox One X | Wii Mini | PS One | console seule | avec manette | bloc d'alimentation
        | câble AV | console rétro | ### jeux intégrés | boîte d'origine | occasion | grise | noire""",
    ),
    (
        50,
        "videogames",
        0.40,
        """manette | chargeur | câble | support | station de charge | casque gamer | micro | volant | pédalier
        | joystick | housse | étui | protection | coque | stylet | film | adaptateur | batterie | dock
        | souris gamer | clavier gamer | tapis de souris | grip | Joy-Con | USB | sans fil | bluetooth | filaire
        | compatible | Thrustmaster | Turtle Beach | Hori | Speedlink | Logitech | Razer | SteelSeries | LED | RGB
        | câble de charge | pour manette | pour PS4 | pour Switch | pour Xbox | accessoire | kit | ventilateur
        | refroidissement | carte mémoire | Go | stand | rangement | sacoche | capteur | caméra | casque VR
        | manette sans fil | double vibration""",
    ),
    (
        1280,
        "toys",
        0.28,
        """peluche | poupée | voiture | camion | Playmobil | Lego | Vtech | Fisher-Price | Bruder | Hot Wheels
        | Majorette | Nerf | doudou | hochet | circuit | dînette | cuisine enfant | garage | train | robot
        | pâte à modeler | Play-Doh | jouet en bois | marionnette | tapis d'éveil | cubes | toupie | Beyblade
        | Barbie | Polly Pocket | LOL Surprise | Pyjamasques | Peppa Pig | Sophie la girafe | jouet d'éveil
        | jeu de construction | briques | maison de poupée | ferme | animaux | dinosaure | tracteur | pompier
        | police | avion | bateau | bain | musical | sonore | lumineux | piles incluses | interactif
        | à tirer | à pousser | porteur | premier âge | mois""",
    ),
    (
        1281,
        "toys",
        0.27,
        """jeu de société | jeu de plateau | jeu de cartes | plateau | pions | règles | stratégie | coopératif
        | ambiance | Asmodee | Gigamic | Iello | Days of Wonder | Monopoly | Scrabble | Cluedo | Uno | Dobble
        | Trivial Pursuit | Catan | Dixit | Les Aventuriers du Rail | Carcassonne | Risk | Mille Bornes
        | Puissance 4 | échecs | dames | extension | jeu d'ambiance | quiz | joueurs | durée ## min | jeu familial
        | Blanc-Manger Coco | Time's Up | Loup-Garou | 7 Wonders | Pandemic | Splendor | Azul | Kingdomino
        | Skyjo | Taboo | Pictionary | Jungle Speed | sablier | jetons | plateau de jeu | tuiles | deck | cartes
        | jeu de lettres | jeu de réflexion | jeu de dés | Hasbro Gaming | Cocktail Games""",
    ),
    (
        1140,
        "figurines",
        0.30,
        """objet de collection | Funko | Pop Vinyl | porte-clés | mug | magnet | statuette | buste | réplique
        | Harry Potter | Disney | Marvel Legends | Star Wars Black Series | Pixi | Moulinsart | Leblon Delienne
        | Plastoy | Bully | Schleich | vintage | boîte d'origine | goodies | poster | Kinder | figurine Kinder
        | Tintin | Astérix | Schtroumpf | Pokémon | Simpsons | Looney Tunes | Stranger Things | Game of Thrones
        | The Walking Dead | Seigneur des Anneaux | bobblehead | tirelire | boule à neige | plaque émaillée
        | pin's | médaille | fève | capsule | miniature | voiture miniature | collectionneur | série limitée
        | numérotée | certificat""",
    ),
    (
        1180,
        "figurines",
        0.28,
        """Warhammer | Games Workshop | Citadel | Warhammer 40k | Age of Sigmar | miniature | figurine à peindre
        | escouade | unité | armée | Space Marine | Orks | Eldar | Nécrons | Dungeons & Dragons | D&D
        | jeu de rôle | jdr | Heroclix | Reaper | Wizkids | métal | plomb | 28mm | peinte | non peinte | Figma
        | Nendoroid | Good Smile | Kotobukiya | échelle 1/8 | échelle 1/7 | waifu | Evangelion | Attack on Titan
        | My Hero Academia | Demon Slayer | Saint Seiya | Chevaliers du Zodiaque | Gundam | Yu-Gi-Oh | figuarts
        | S.H. Figuarts | Sangokushi | Confrontation | Rackham | Battletech | blister | grappe | Chaos
        | figurine manga | figurine anime""",
    ),
    (
        1160,
        "cards",
        0.55,
        """carte | cartes | Pokémon | Yu-Gi-Oh! | Magic | Magic the Gathering | MTG | booster | display | deck | holo
        | reverse | rare | ultra rare | secrète | full art | PV ### | ###/### | ##/### | VF | Panini | Topps
        | Upper Deck | vignettes | stickers | album Panini | carte de football | EX | GX | VMAX | V-Star | Dracaufeu
        | Pikachu | Mewtwo | mint | near mint | foil | commune | peu commune | set | série | édition # | starter
        | carte à collectionner | trading card | TCG | Dragon Ball Super Card Game | Fifa 365 | Match Attax
        | lot de cartes | protège-cartes | sleeves | classeur | gradée | PSA | NBA | Legendary""",
    ),
    (
        1300,
        "models",
        0.50,
        """maquette | modèle réduit | échelle 1/## | 1:## | radiocommandé | RC | drone | hélicoptère | avion
        | voiture RC | train électrique | locomotive | wagon | HO | échelle N | Märklin | Jouef | Roco | Revell
        | Tamiya | Heller | Airfix | Italeri | Solido | Norev | Burago | Minichamps | die-cast | moteur
        | batterie LiPo | servo | 2.4GHz | télécommande | quadricoptère | FPV | caméra HD | kit de montage | peinture
        | colle | hélice | rails | aiguillage | décor | diorama | voiture miniature 1/43 | 1/18 | 1/43 | 1/24 | 1/72
        | char | bateau RC | planeur | brushless | DJI | Syma | Hubsan | Carrera | circuit Carrera""",
    ),
    (
        1301,
        "bar",
        0.50,
        """fléchettes | cible | billard | queue de billard | boules de billard | baby-foot | babyfoot | poker
        | jetons | mallette poker | tapis | bar | ping-pong | table de ping pong | raquette | Cornilleau | Winmau
        | Harrows | Unicorn | craie | queue | pointes | flights | jeu de bar | flipper | jeu de fléchettes
        | cible électronique | billard américain | snooker | jeu de palet | palets | mölkky | cornhole | tapis vert
        | chaussettes | chaussettes bébé | tricot | laine | pelote | crochet | aiguilles | broderie | canevas
        | scrapbooking | perles | loisirs créatifs | peinture sur soie | mosaïque | kit créatif""",
    ),
    (
        1302,
        "outdoor",
        0.48,
        """déguisement | costume | panoplie | masque | perruque | Halloween | carnaval | cosplay | trottinette
        | balançoire | toboggan | portique | trampoline | piscine à balles | cerf-volant | ballon | pistolet à eau
        | bulles | tente | cabane | plage | frisbee | badminton | vélo | draisienne | roller | skateboard | casque
        | Hudora | Oxelo | BS Toys | Rubie's | pistolet | épée | princesse | pirate | chevalier | super-héros
        | accessoire déguisement | maquillage | fête | anniversaire | taille unique | adulte | jeux d'eau
        | seau | pelle | jeu de plein air | quilles | croquet | pétanque | boules""",
    ),
    (
        1320,
        "baby",
        0.50,
        """bébé | naissance | poussette | siège auto | lit parapluie | biberon | tétine | chauffe-biberon | babyphone
        | écoute-bébé | chaise haute | transat | porte-bébé | gigoteuse | turbulette | matelas à langer
        | table à langer | bavoir | body | pyjama | 0-# mois | ## mois | Chicco | Bébé Confort | Tommee Tippee
        | Philips Avent | MAM | Babymoov | Béaba | Maxi-Cosi | Isofix | parc bébé | baignoire | sac à langer
        | veilleuse | mobile musical | nacelle | landau | groupe 0+ | réducteur | siège de bain | stérilisateur
        | mouche-bébé | couche | lingettes | puériculture | nourrisson | maternité | allaitement | tire-lait""",
    ),
    (
        1560,
        "home",
        0.34,
        """meuble | table | chaise | canapé | fauteuil | armoire | commode | buffet | bibliothèque | étagère | lit
        | sommier | tabouret | bureau | meuble TV | table basse | table de chevet | console | dressing | banc
        | tiroirs | portes | pin | hêtre | MDF | panneau | métal | verre | industriel | contemporain | à monter
        | L##xP##xH## cm | Conforama | But | tête de lit | cadre de lit | matelas | canapé d'angle | convertible
        | pouf | vaisselier | desserte | meuble à chaussures | penderie | chiffonnier | caisson | plateau
        | chaises de salle à manger | lot de # chaises | tabouret de bar | piètement | laqué""",
    ),
    (
        2060,
        "home",
        0.34,
        """décoration | déco | cadre | cadre photo | vase | bougie | bougeoir | horloge | pendule | tableau | toile
        | sticker mural | stickers | affiche | poster | luminaire | suspension | abat-jour | guirlande | LED
        | fleurs artificielles | plante artificielle | statue | bouddha | photophore | lanterne | diffuseur
        | parfum d'ambiance | Noël | sapin | boule de Noël | papier peint | décoration murale | miroir mural
        | lampe de chevet | lampadaire | applique | ampoule | objet déco | corbeille | panier | boîte de rangement
        | plateau décoratif | figurine déco | carillon | attrape-rêves | tenture | art mural | Pâques""",
    ),
    (
        1920,
        "home",
        0.42,
        """linge de maison | housse de couette | parure de lit | drap | drap housse | taie d'oreiller | oreiller
        | couette | traversin | housse de coussin | voilage | nappe | serviette | serviette de bain | drap de bain
        | peignoir | torchon | tapis de bain | protège-matelas | 100% coton | percale | satin | polaire
        | microfibre | 140x200 | 240x260 | 65x65 | 2 personnes | 1 personne | Tradilinge | Linnea | Essix | Dodo
        | imprimé | motif | brodé | lavable | lavable en machine | ### fils | jeté de lit | couvre-lit | dessus de lit
        | rideaux occultants | oeillets | sets de table | linge de lit | housse de canapé | housse de chaise
        | fermeture éclair | ## g/m²""",
    ),
    (
        2582,
        "garden",
        0.35,
        """salon de jardin | table de jardin | chaise de jardin | fauteuil de jardin | transat | bain de soleil
        | chaise longue | parasol | pied de parasol | tonnelle | pergola | hamac | balancelle | banc de jardin
        | coussin d'extérieur | housse de protection | résine tressée | teck | acacia | pliable | empilable
        | Hespéride | Lafuma | Grosfillex | barbecue | plancha | brasero | abri de jardin | serre | jardinière
        | bac à fleurs | pot de fleurs | salon bas | ensemble de jardin | mobilier de jardin | voile d'ombrage
        | store | claustra | cache-pot | nichoir | fontaine | éclairage solaire | lampe solaire | pots | potager""",
    ),
    (
        2583,
        "garden",
        0.55,
        """piscine | piscine hors sol | piscine tubulaire | spa | spa gonflable | jacuzzi | liner | bâche à bulles
        | filtre à sable | pompe de filtration | skimmer | robot piscine | aspirateur | chlore | galets de chlore
        | pH moins | brome | traitement de l'eau | margelle | Gre | Zodiac | Dolphin | Kokido | Ubbink | Hayward
        | Astral | bâche hivernage | chauffage | pompe à chaleur | douche solaire | bouée | matelas gonflable
        | Ø ### cm | m³ | épuisette | nage à contre-courant | piscine bois | piscine autoportante | cartouche
        | floculant | anti-algues | analyse | bandelettes | diffuseur de chlore | thermomètre | tapis de sol
        | kit piscine | local technique | by-pass | électrolyseur | pool | swimming pool | Schwimmbad""",
    ),
    (
        2585,
        "garden",
        0.40,
        """outil | outillage | perceuse | visseuse | perceuse-visseuse | meuleuse | scie | scie circulaire | ponceuse
        | marteau | tournevis | clé | jeu de clés | coffret | embouts | mèches | forets | niveau | mètre | pince
        | établi | escabeau | nettoyeur haute pression | tondeuse | taille-haie | débroussailleuse | souffleur
        | tronçonneuse | sans fil | 18V | ## V | #### W | Bosch | Makita | Dewalt | Black & Decker | Stanley
        | Ryobi | Einhell | Kärcher | Facom | Parkside | visserie | cheville | mastic | serrure | cadenas | robinet
        | tuyau d'arrosage | enrouleur | lame | disque | sécateur | râteau | bêche | pelle | brouette""",
    ),
    (
        1940,
        "food",
        0.55,
        """café | thé | chocolat | bonbons | confiserie | biscuits | gâteaux | épices | sel | poivre | huile d'olive
        | vinaigre | miel | confiture | pâtes | riz | sauce | conserve | bio | sans gluten | capsules | dosettes
        | Nespresso | Dolce Gusto | Tassimo | Lavazza | Haribo | Lindt | sachet | ### g | # kg | ## cl | paquet
        | DLUO | ingrédients | sucre | saveur | arôme | vanille | caramel | infusion | tisane | grains | moulu
        | gourmand | Bonne Maman | foie gras | terrine | pâté | chips | céréales | barres | protéines | vin
        | bière | whisky | rhum | apéritif | coffret gourmand | épicerie fine""",
    ),
    (
        2220,
        "pets",
        0.55,
        """chien | chat | chiot | chaton | animaux | animal | oiseau | rongeur | lapin | hamster | poisson | aquarium
        | collier | laisse | harnais | gamelle | croquettes | friandises | litière | arbre à chat | griffoir
        | panier | coussin pour chien | niche | cage | jouet pour chien | os | balle | anti-puces | brosse
        | toilettage | Royal Canin | Purina | Trixie | Zolux | Ferplast | Hill's | Pro Plan | Kong | pet | dog | cat
        | Hund | Katze | muselière | manteau pour chien | fontaine à eau | distributeur | terrarium | vivarium
        | filtre aquarium | graines | foin | perchoir | transport | caisse de transport""",
    ),
    (
        2522,
        "stationery",
        0.55,
        """cahier | carnet | bloc-notes | agenda | calendrier | stylo | stylo bille | stylo plume | crayon
        | crayons de couleur | feutres | surligneur | gomme | règle | trousse | classeur | chemise | pochette
        | enveloppes | papier | ramette | A4 | A5 | ### feuilles | Clairefontaine | Oxford | Bic | Stabilo | Pilot
        | Maped | Exacompta | Moleskine | Leitz | Post-it | étiquettes | ruban adhésif | agrafeuse
        | cartouche d'encre | toner | HP | Canon | Epson | fournitures scolaires | seyès | grands carreaux
        | petits carreaux | Notizbuch | Seiten | Punktraster | pages lignées | couverture rigide | spirale
        | reliure | intercalaires | porte-documents | tampon | encre | taille-crayon""",
    ),
)

CLASS_VOCABULARIES: dict[int, ClassVocabulary] = {
    code: ClassVocabulary(code=code, group=group, words=_tokens(words), specificity=specificity)
    for code, group, specificity, words in _CLASS_DATA
}

GENERIC_WORDS: tuple[str, ...] = _tokens(
    """neuf | lot | pack | original | nouveau | couleur | noir | blanc | rouge | bleu | vert | gris | rose | jaune
    | grand | petit | taille | modèle | cadeau | idéal | pour | avec | de | la | le | les | et | en | sans | pour
    | édition | collection | version | set | kit | accessoire | qualité | haute qualité | livraison rapide
    | garantie | top | super | mini | maxi | pro | premium | deluxe | classique | nouvelle | neuve | état
    | très bon état | bon état | comme neuf | occasion | rare | unique | officiel | complet | import
    | France | français | Europe | fabriqué en France | made in France | new | high quality | for | with | black
    | white | size | style | gift | design | portable | vintage | best | the | and | of | für | mit | und
    | neu | schwarz | weiß | Größe | Farbe | Stück | Qualität | Geschenk | multicolore | argent | doré
    | or | marron | violet | orange | beige | transparent | lumière | lot de # | # pièces | x# | ## cm
    | ##x## cm | Réf. @@-#### | réf ##### | modèle ### | #### | ## | # | 20## | par | sur | un | une | des
    | du | au | à | très | plus | tout | tous | nos | votre | vous | ce | cette | vos | il | elle | est | sont
    | pas | ou | dans | fait | facile | pratique | solide | léger | résistant | durable | élégant | joli
    | magnifique | beau | belle | parfait | idéal pour | cadeau idéal | offrir | fête | anniversaire | Noël
    | enfant | adulte | homme | femme | famille | maison | bureau | voyage | été | hiver | plastique | métal
    | bois | coton | verre | papier | tissu | cuir | acier inoxydable | silicone | matériel | matériau
    | dimensions | poids | environ | env. | approx. | cm | mm | kg | g | ml | L | pièce | pièces | unité
    | article | produit | vendeur | expédition | emballage | emballage d'origine | stock | disponible
    | promo | soldes | prix | pas cher | offre | exclusif | limité | spécial | #ème | n°# | V# | série #"""
)

# Description sentence openers, as sellers write them (many listings are machine-translated or bilingual).
DESCRIPTION_OPENERS: tuple[str, ...] = _tokens(
    """Caractéristiques : | Description : | Descriptif : | Le paquet inclut : | Contenu : | Matériau : | Couleur :
    | Dimensions : | Taille : | Poids : | Remarque : | Attention : | Points forts : | Détails : | Présentation :
    | Spécifications : | Avantages : | 100% neuf et de haute qualité. | Produit neuf et d'origine.
    | Livraison rapide et soignée. | Expédié sous 48h. | Très bon état général. | Idéal pour offrir.
    | Garantie 2 ans. | En stock, expédition immédiate. | Features: | Description: | Package includes:
    | Specification: | Material: | Note: | 100% brand new and high quality. | Please allow 1-3 cm error
    | due to manual measurement. | Eigenschaften: | Lieferumfang: | Beschreibung: | Hinweis: | Material:
    | Hochwertige Qualität. | Cet article | Ce produit | Nous vous proposons | Vous aimerez | Parfait pour
    | Conçu pour | Fabriqué en | Compatible avec | Convient pour | Il s'agit de | Découvrez | Retrouvez
    | Pour votre | Grâce à son | Avec ce | Offrez | Profitez de"""
)

DESCRIPTION_CLOSERS: tuple[str, ...] = (
    "En raison de la différence entre les moniteurs, l'image peut ne pas refléter la couleur réelle de l'article.",
    "Merci de votre compréhension.",
    "N'hésitez pas à nous contacter pour toute question.",
    "Photos non contractuelles.",
    "Due to the different monitor and light effect, the actual color may be slightly different.",
    "Thank you for your understanding!",
    "Bitte beachten Sie: die Farbe kann leicht abweichen.",
    'Satisfait ou remboursé, "livraison offerte" dès 2 articles.',
    "Envoi soigné, suivi & assuré.",
)

# French -> English spellings a new marketplace seller (or a machine translation) would use.
ENGLISH_VARIANTS: dict[str, str] = {
    "livre": "book", "roman": "novel", "jeu": "game", "jeux": "games", "jouet": "toy", "enfant": "kid",
    "enfants": "kids", "noir": "black", "blanc": "white", "rouge": "red", "bleu": "blue", "vert": "green",
    "gris": "grey", "neuf": "new", "nouveau": "new", "grand": "large", "petit": "small", "taille": "size",
    "table": "table", "chaise": "chair", "coussin": "cushion", "piscine": "pool", "pompe": "pump",
    "outil": "tool", "chien": "dog", "chat": "cat", "cahier": "notebook", "stylo": "pen", "carte": "card",
    "cartes": "cards", "figurine": "figure", "manette": "controller", "poupée": "doll", "peluche": "plush",
    "meuble": "furniture", "lampe": "lamp", "miroir": "mirror", "rideau": "curtain", "jardin": "garden",
    "bébé": "baby", "poussette": "stroller", "maquette": "model kit", "café": "coffee", "thé": "tea",
    "chocolat": "chocolate", "magazine": "magazine", "revue": "review", "lot": "bundle", "collection": "set",
    "cadeau": "gift", "couleur": "colour", "bois": "wood", "métal": "metal", "coton": "cotton",
    "décoration": "decor", "tapis": "rug", "couverture": "blanket", "oreiller": "pillow", "drap": "sheet",
    "perceuse": "drill", "scie": "saw", "marteau": "hammer", "console": "console", "casque": "headset",
    "chargeur": "charger", "câble": "cable", "boîte": "box", "plateau": "board", "dés": "dice",
    "déguisement": "costume", "masque": "mask", "ballon": "ball", "laisse": "leash", "collier": "collar",
    "papier": "paper", "crayon": "pencil", "gomme": "eraser", "règle": "ruler", "qualité": "quality",
}

# Syllables for the words of tomorrow's catalogue (new brands, new product names) under vocabulary drift.
NOVEL_SYLLABLES: tuple[str, ...] = (
    "ka", "zu", "mi", "lo", "vex", "tra", "no", "bel", "qui", "dra", "fen", "ix", "or", "sta", "pli", "mo",
    "rak", "tes", "vi", "go", "lun", "shi", "pa", "ver", "zen", "kro", "ly", "ta", "gro", "nex",
)
